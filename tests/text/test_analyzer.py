"""The analyser: words, stop words, stemming, config round trips."""

from __future__ import annotations

import pytest

from keeldb.errors import InvalidArgumentError
from keeldb.text import Analyzer


def test_default_english() -> None:
    a = Analyzer()
    assert a("The runners' quick runs!") == ["runner", "quick", "run"]
    assert a("Running RAN runs") == ["run", "ran", "run"]
    assert a("a I x") == []  # stop words and single letters


def test_unicode_words_and_no_language() -> None:
    a = Analyzer(language=None)
    assert a("Ünïcödé naïve café, 東京タワー and SKU-1234") == [
        "ünïcödé", "naïve", "café", "東京タワー", "and", "sku", "1234",
    ]  # fmt: skip
    assert Analyzer(language=None, lowercase=False)("Hello World") == ["Hello", "World"]
    assert Analyzer(language=None, min_token_len=1)("a b") == ["a", "b"]


def test_overrides() -> None:
    assert Analyzer(stop_words=())("the cats") == ["the", "cat"]
    assert Analyzer(stem=False)("the cats") == ["cats"]
    assert Analyzer(stop_words=("cats",), stem=False)("the cats") == ["the"]


def test_batch_equals_single_and_cache_is_consistent() -> None:
    a = Analyzer()
    texts = ["connected connections connecting", "", "generously generous generation"]
    assert a.tokenize_many(texts) == [a(t) for t in texts]
    assert a.tokenize_many(texts) == a.tokenize_many(texts)


def test_config_round_trip_and_fingerprint() -> None:
    for a in (Analyzer(), Analyzer(language=None), Analyzer(stop_words=("x", "y"), stem=False)):
        assert Analyzer.from_config(a.config()) == a
        assert Analyzer.from_config(a.config_json()) == a
        assert Analyzer.from_config(a.config()).fingerprint() == a.fingerprint()
    assert Analyzer().fingerprint() != Analyzer(language=None).fingerprint()


@pytest.mark.parametrize(
    "bad",
    [{"name": "other"}, {"name": "standard", "options": {"colour": 1}}, "not json", [1]],
)
def test_bad_configs(bad) -> None:
    with pytest.raises(InvalidArgumentError):
        Analyzer.from_config(bad)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        Analyzer(language="klingon")
    with pytest.raises(InvalidArgumentError):
        Analyzer(min_token_len=0)
    with pytest.raises(InvalidArgumentError):
        Analyzer(language=None, stem=True)


@pytest.mark.parametrize(
    "analyzer",
    [Analyzer(), Analyzer(language=None), Analyzer(stop_words=()), Analyzer(lowercase=False)],
)
def test_token_batch_is_the_per_text_terms_flat(analyzer: Analyzer) -> None:
    # Texts with new words, repeated words, only stop words, no words at all, and a word
    # first seen in the same batch as its repeat (learned once for the whole batch).
    texts = [
        "The Xylophonists' xylophones, running runners",
        "",
        "the and of",
        "Zyzzogeton zyzzogeton ZYZZOGETON ab",
        "!!! ... ",
        "naïve café déjà-vu 東京 東京タワー",
    ]
    batch = analyzer.tokenize_batch(texts)
    expected = [analyzer(t) for t in texts]
    assert batch.counts.tolist() == [len(e) for e in expected]
    assert batch.terms == [t for e in expected for t in e]
    assert batch.split() == expected
    assert analyzer.tokenize_many(texts) == expected
    assert len(batch) == len(texts)
    empty = analyzer.tokenize_batch([])
    assert empty.terms == [] and empty.counts.tolist() == [] and empty.split() == []


def test_token_batch_matches_a_reference_analysis() -> None:
    import re

    import Stemmer

    from keeldb.text import ENGLISH_STOP_WORDS

    stem = Stemmer.Stemmer("english").stemWord
    texts = ["Running runners ran; the RUNS", "", "a of", "Quokkas quokka's glasses"] * 3

    def reference(t: str) -> list[str]:
        return [stem(w) for w in re.findall(r"\w\w+", t.lower()) if w not in ENGLISH_STOP_WORDS]

    assert Analyzer().tokenize_batch(texts).split() == [reference(t) for t in texts]


@pytest.mark.parametrize(
    "analyzer",
    [
        Analyzer(),
        Analyzer(language=None),
        Analyzer(stop_words=("running", "the")),
        Analyzer(language="english", stem=False, lowercase=False),
        Analyzer(min_token_len=1, stop_words=()),
    ],
)
def test_one_text_is_analysed_as_in_a_batch(analyzer: Analyzer) -> None:
    # A query's analysis (__call__) takes its own path: it must give what the batch
    # path gives each text, for texts with stop words, repeats, case, digits, scripts.
    import random

    rng = random.Random(7)
    vocab = ["The", "running", "runs", "Runner", "a", "of", "x", "42", "naïve", "Ünïcode",
             "東京", "don't", "co-op", "ΑΒΓ", "under_score", "AND", "is", "cells"]  # fmt: skip
    # words no earlier test has seen, so the single-text path meets them first
    vocab += ["".join(rng.choice("bcdfgklmnprstvz") for _ in range(6)) + rng.choice(
        ["ing", "ed", "s", "ation", "ly", ""]) for _ in range(50)]  # fmt: skip
    texts = ["", "   ", "!!"] + [
        " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 25))) for _ in range(200)
    ]
    singles = [analyzer(t) for t in texts]
    assert singles == analyzer.tokenize_many(texts)
