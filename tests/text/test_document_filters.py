"""Document filters ``$contains`` and ``$text`` (issue 14) against a brute-force oracle
(the reference evaluator, one row at a time) in the memtable, in sealed flat segments
and after a merge into an HNSW segment, through deletes and replacements, combined with
metadata filters, in every call that takes a filter."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError
from keeldb.filtering import compile_filter
from keeldb.text import Analyzer

WORDS = [
    "Apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey", "iris", "jade",
    "running", "runs", "the", "naïve", "café", "日本語", "tokyo",
]  # fmt: skip


def _doc(rng: random.Random) -> str | None:
    if rng.random() < 0.15:
        return None
    n = rng.randint(0, 8)
    return " ".join(rng.choice(WORDS) for _ in range(n))


FILTERS: list[dict[str, Any]] = [
    {"$contains": "an"},
    {"$contains": "Apple"},
    {"$contains": "apple"},  # case-sensitive
    {"$contains": "e b"},  # spans words
    {"$contains": "é"},
    {"$contains": "本語"},
    {"$contains": "zzz"},
    {"$text": "apple"},  # analysed: matches "Apple"
    {"$text": "run"},  # stemmed: running, runs
    {"$text": "banana cherry"},
    {"$text": "the"},  # only a stop word: matches nothing
    {"$text": "café tokyo"},
    {"$not": {"$contains": "fig"}},
    {"$and": [{"$text": "grape"}, {"g": {"$lt": 2}}]},
    {"$or": [{"$contains": "iris"}, {"g": 0}]},
    {"g": 1, "$text": "honey"},
    {"$and": [{"$contains": "date"}, {"$not": {"$text": "elder"}}]},
]


class Model:
    """The records as plain Python: id -> (document, metadata)."""

    def __init__(self) -> None:
        self.live: dict[str, tuple[str | None, dict[str, Any]]] = {}

    def expected(self, spec: dict[str, Any]) -> set[str]:
        flt = compile_filter(spec)
        return {i for i, (doc, meta) in self.live.items() if flt.matches(meta, doc, Analyzer())}


def _write(col: keeldb.Collection, model: Model, rng: random.Random, ids: list[str]) -> None:
    docs = [_doc(rng) for _ in ids]
    metas = [{"g": rng.randint(0, 3)} for _ in ids]
    vecs = np.random.default_rng(rng.randint(0, 10**6)).normal(size=(len(ids), 8))
    col.upsert(ids, vecs.astype(np.float32), metas, documents=docs)
    for i, d, m in zip(ids, docs, metas, strict=True):
        if d is None and i in model.live:  # None keeps an existing record's document
            d = model.live[i][0]
        model.live[i] = (d, m)


def _check(col: keeldb.Collection, model: Model) -> None:
    for spec in FILTERS:
        want = model.expected(spec)
        assert col.count(spec) == len(want), spec
        page = col.scan(filter=spec, limit=10_000)
        assert {r.id for r in page.records} == want, spec
        hits = col.search(np.ones(8, np.float32), 10_000, filter=spec, exact=True)
        assert {h.id for h in hits} == want, spec
        text = col.text_search("apple banana grape iris date honey", 10_000, filter=spec)
        assert {h.id for h in text} <= want, spec


@pytest.mark.parametrize("stage", ["memtable", "sealed", "merged"])
def test_document_filters_match_oracle(db_path: str, stage: str) -> None:
    rng = random.Random(14)
    opts: dict[str, Any] = {"background": False, "memtable_rows": 60}
    if stage != "merged":
        opts["hnsw_min_rows"] = 10**6
    else:
        opts["hnsw_min_rows"] = 100
    if stage == "memtable":
        opts["memtable_rows"] = 10**6
    model = Model()
    with keeldb.open(db_path, **opts) as db:
        col = db.create_collection("c", 8)
        for start in range(0, 300, 30):
            _write(col, model, rng, [f"r{i}" for i in range(start, start + 30)])
        _write(col, model, rng, [f"r{i}" for i in rng.sample(range(300), 40)])  # replace
        gone = [f"r{i}" for i in rng.sample(range(300), 30)]
        col.delete(gone)
        for i in gone:
            model.live.pop(i, None)
        if stage != "memtable":
            col.compact()
            kinds = {s.kind for s in col.stats().segments if s.rows}
            assert kinds == ({"hnsw"} if stage == "merged" else {"flat"})
        else:
            assert {s.kind for s in col.stats().segments if s.rows} == {"memtable"}
        _check(col, model)
        # delete by a document filter
        n = col.delete(filter={"$contains": "jade"})
        want = model.expected({"$contains": "jade"})
        assert n == len(want)
        for i in want:
            del model.live[i]
        _check(col, model)
    with keeldb.open(db_path, **opts) as db:  # reopened: segments (and replayed rows)
        _check(db.get_collection("c"), model)


def test_text_filter_uses_collection_analyzer(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", 4, text={"language": None})
        vecs = np.eye(4, dtype=np.float32)[:2]
        col.upsert(["a", "b"], vecs, documents=["the runners run", "a runner"])
        assert col.count({"$text": "runner"}) == 1  # no stemming
        assert col.count({"$text": "the"}) == 1  # no stop words
        hybrid = col.hybrid_search("runner", 5, vector=vecs[0], filter={"$contains": "the"})
        assert [h.id for h in hybrid] == ["a"]


def test_document_filter_validation(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", 4)
        for bad in ({"$contains": ""}, {"$contains": 3}, {"$text": None}, {"$text": ["a"]}):
            with pytest.raises(InvalidArgumentError, match=r"filter\.\$"):
                col.count(bad)
        # field-level $contains keeps its meaning: an array holding a value
        col.upsert(["a"], np.ones((1, 4), np.float32), [{"tags": ["x"]}], documents=["y"])
        assert col.count({"tags": {"$contains": "x"}}) == 1
        assert col.count({"$contains": "x"}) == 0
        assert col.count({"$contains": "y"}) == 1


def test_document_filter_needs_documents_source() -> None:
    from keeldb.filtering import MetadataColumns

    flt = compile_filter({"$contains": "x"})
    assert flt.uses_documents and not compile_filter({"a": 1}).uses_documents
    with pytest.raises(InvalidArgumentError, match="documents"):
        flt.mask(MetadataColumns.build([{}]))
