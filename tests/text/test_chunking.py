"""chunk / chunk_spans / chunk_records."""

from __future__ import annotations

import random

import pytest

from keeldb.errors import InvalidArgumentError
from keeldb.text import chunk, chunk_records, chunk_spans


def test_prefers_paragraphs_then_sentences_then_words() -> None:
    text = "First para one. Still first.\n\nSecond para here."
    assert chunk(text, 100) == [text]
    assert chunk(text, 30) == ["First para one. Still first.", "Second para here."]
    assert chunk(text, 16) == ["First para one.", "Still first.", "Second para", "here."]
    assert chunk("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_spans_point_into_the_source_and_respect_limits() -> None:
    rng = random.Random(1)
    words = ["alpha", "be", "gamma.", "delta!", "epsilon\n\n", "z" * 30, "eta?"]
    for _ in range(50):
        text = " ".join(rng.choice(words) for _ in range(rng.randint(0, 80)))
        max_chars = rng.randint(5, 60)
        overlap = rng.randint(0, max_chars - 1)
        spans = chunk_spans(text, max_chars, overlap)
        for c in spans:
            assert 0 < len(c.text) <= max_chars
            assert text[c.start : c.end] == c.text
        starts = [c.start for c in spans]
        assert starts == sorted(set(starts))  # always progresses
        # Nothing is lost: every non-space character is inside some chunk.
        covered = set()
        for c in spans:
            covered.update(range(c.start, c.end))
        assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_overlap_repeats_whole_words() -> None:
    text = "one two three four five six seven eight nine ten"
    chunks = chunk(text, 15, overlap=6)
    assert chunks[0] == "one two three"
    assert chunks[1].startswith("three")
    assert all(len(c) <= 15 for c in chunks)
    assert chunk(text, 15) == ["one two three", "four five six", "seven eight", "nine ten"]


def test_records_under_a_parent() -> None:
    text = "Para one is here.\n\nPara two is here."
    recs = chunk_records("doc7", text, 20, metadata={"lang": "en"})
    assert recs.ids == ["doc7#0", "doc7#1"]
    assert recs.documents == ["Para one is here.", "Para two is here."]
    assert recs.metadata[1] == {
        "lang": "en",
        "parent_id": "doc7",
        "chunk": 1,
        "start": 19,
        "end": 36,
    }
    for doc, meta in zip(recs.documents, recs.metadata, strict=True):
        assert text[meta["start"] : meta["end"]] == doc


@pytest.mark.parametrize(
    "kwargs", [{"max_chars": 0}, {"max_chars": 10, "overlap": 10}, {"max_chars": 10, "overlap": -1}]
)
def test_bad_arguments(kwargs) -> None:
    with pytest.raises(InvalidArgumentError):
        chunk("text", **kwargs)


def test_bad_records() -> None:
    with pytest.raises(InvalidArgumentError):
        chunk_records("", "x")
    with pytest.raises(InvalidArgumentError):
        chunk_records("p", "x", metadata={"chunk": 1})
    assert chunk_records("p", "   ").ids == []
