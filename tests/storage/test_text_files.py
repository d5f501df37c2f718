"""Segment .docs and .post files: round trips and every kind of damage."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.text_files import (
    DocumentsTable,
    PostingsMissingError,
    write_documents,
)
from keeldb.text import Analyzer, SealedPostings, bm25_search
from keeldb.text.persist import build_postings, load_or_rebuild, load_postings, save_postings

DOCS = ["The quick brown fox", None, "", "Lazy dogs sleep; quick foxes jump", "東京 café"]


@pytest.fixture
def seg(tmp_path):
    fs = OsFileSystem()
    d = str(tmp_path)
    write_documents(fs, d, 1, DOCS)
    save_postings(fs, d, 1, build_postings(DOCS, Analyzer()), Analyzer())
    return fs, d


def test_documents_round_trip(seg) -> None:
    _, d = seg
    t = DocumentsTable(d, 1, len(DOCS))
    assert t.all() == DOCS
    assert t.many([4, 0]) == ["東京 café", "The quick brown fox"]
    assert t.at(1) is None and t.at(2) == ""
    t.close()


def test_empty_documents_file(tmp_path) -> None:
    write_documents(OsFileSystem(), str(tmp_path), 2, [])
    t = DocumentsTable(str(tmp_path), 2, 0)
    assert t.all() == []
    t.close()


def test_postings_round_trip_equals_build(seg) -> None:
    _, d = seg
    a = Analyzer()
    loaded = load_postings(d, 1, len(DOCS), a)
    built = build_postings(DOCS, a)
    assert loaded.terms == built.terms
    for x, y in zip(loaded.lookup(built.terms), built.lookup(built.terms), strict=True):
        np.testing.assert_array_equal(x[0], y[0])
        np.testing.assert_array_equal(x[1], y[1])
    got = bm25_search([loaded], a("quick fox"), 5)
    assert got.row.tolist() == bm25_search([built], a("quick fox"), 5).row.tolist()
    assert set(got.row.tolist()) == {0, 3}


def _flip(path: str, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_missing_postings_are_detected_and_rebuilt(seg) -> None:
    fs, d = seg
    os.remove(os.path.join(d, "seg-00000001.post"))
    with pytest.raises(PostingsMissingError):
        load_postings(d, 1, len(DOCS), Analyzer())
    with pytest.warns(RuntimeWarning, match="rebuilt text postings of segment 1"):
        postings, rebuilt = load_or_rebuild(fs, d, 1, len(DOCS), Analyzer())
    assert rebuilt and "fox" in postings.terms
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, rebuilt = load_or_rebuild(fs, d, 1, len(DOCS), Analyzer())
    assert not rebuilt


@pytest.mark.parametrize("offset", [3, 70, 100, -3])
def test_damaged_postings_payload_is_detected_and_rebuilt(seg, offset) -> None:
    fs, d = seg
    path = os.path.join(d, "seg-00000001.post")
    _flip(path, offset if offset >= 0 else os.path.getsize(path) + offset)
    with pytest.raises(CorruptionError):
        load_postings(d, 1, len(DOCS), Analyzer())
    with pytest.warns(RuntimeWarning):
        _, rebuilt = load_or_rebuild(fs, d, 1, len(DOCS), Analyzer())
    assert rebuilt
    load_postings(d, 1, len(DOCS), Analyzer())  # the file was replaced by a good one


def test_postings_of_another_analyser_are_rebuilt(seg) -> None:
    fs, d = seg
    other = Analyzer(language=None)
    with pytest.raises(CorruptionError, match="another analyser"):
        load_postings(d, 1, len(DOCS), other)
    with pytest.warns(RuntimeWarning):
        postings, _ = load_or_rebuild(fs, d, 1, len(DOCS), other)
    assert "the" in postings.terms


def test_postings_row_count_mismatch(seg) -> None:
    _, d = seg
    with pytest.raises(CorruptionError, match="row count"):
        load_postings(d, 1, len(DOCS) + 1, Analyzer())


@pytest.mark.parametrize("where", ["header", "payload", "truncate"])
def test_damaged_documents_are_refused(seg, where) -> None:
    fs, d = seg
    path = os.path.join(d, "seg-00000001.docs")
    if where == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 2)
    else:
        _flip(path, 8 if where == "header" else os.path.getsize(path) - 2)
    with pytest.raises(CorruptionError):
        DocumentsTable(d, 1, len(DOCS))
    os.remove(os.path.join(d, "seg-00000001.post"))
    with pytest.raises(CorruptionError):  # the truth is damaged: no silent rebuild
        load_or_rebuild(fs, d, 1, len(DOCS), Analyzer())


def test_mmapped_postings_survive_merge(seg, tmp_path) -> None:
    _, d = seg
    loaded = load_postings(d, 1, len(DOCS), Analyzer())
    merged = SealedPostings.merge([(loaded, np.array([4, -1, 3, 2, 1]))], 5)
    assert merged.lookup(["fox"])[0][0].tolist() == [2, 4]
