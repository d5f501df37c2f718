"""Collection.hybrid_search: dense and BM25 candidates fused (RRF or weighted)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import keeldb
from keeldb.engine.hybrid import DEFAULT_DENSE_DEPTH
from keeldb.errors import InvalidArgumentError
from keeldb.text import DEFAULT_DEPTH, rrf, weighted

WORDS = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]


@pytest.fixture
def col(db_path: str):  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    with keeldb.open(db_path, background=False, memtable_rows=150) as db:
        c = db.create_collection("c", dim=8, metric="l2")
        n = 400
        vecs = np.random.default_rng(3).standard_normal((n, 8)).astype(np.float32)
        docs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) for _ in range(n)]
        c.upsert([f"r{i}" for i in range(n)], vecs, [{"g": i % 3} for i in range(n)],
                 documents=docs)  # fmt: skip
        c.delete([f"r{i}" for i in range(0, n, 10)])
        yield c


def _expected(col: keeldb.Collection, q: str, v: np.ndarray, k: int, **kw):  # type: ignore[no-untyped-def]
    flt = kw.get("filter")
    # the dense side to depth 64, BM25 to 100 (docs/text.md, "Hybrid defaults")
    assert (DEFAULT_DENSE_DEPTH, DEFAULT_DEPTH) == (64, 100)
    dense = col.search(v, DEFAULT_DENSE_DEPTH, filter=flt)
    text = col.text_search(q, DEFAULT_DEPTH, filter=flt)
    lists = [[(h.id, h.distance) for h in dense], [(h.id, h.score) for h in text]]
    if kw.get("fusion", "rrf") == "rrf":
        return rrf(lists, rrf_k=kw.get("rrf_k") or 10, weights=kw.get("weights"), k=k)
    return weighted(lists, higher_is_better=[False, True], weights=kw.get("weights"), k=k)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"rrf_k": 60},
        {"weights": [0.3, 0.7]},
        {"fusion": "weighted"},
        {"fusion": "weighted", "weights": [1, 2], "filter": {"g": 1}},
        {"filter": {"g": {"$ne": 0}}},
    ],
)
def test_hybrid_equals_fusion_of_both_searches(col: keeldb.Collection, kw: dict) -> None:
    v = np.random.default_rng(9).standard_normal(8).astype(np.float32)
    for q in ("alpha beta", "omega", "kappa theta sigma"):
        hits = col.hybrid_search(q, 10, vector=v, **kw)
        want = _expected(col, q, v, 10, **kw)
        assert [(h.id, h.score) for h in hits] == [(i, pytest.approx(s)) for i, s in want]
        for h in hits:
            rec = col.get([h.id])[0]
            assert rec is not None and h.document == rec.document and h.metadata == rec.metadata
            assert h.distance == -h.score  # type: ignore[operator]
            if "filter" in kw and kw["filter"] == {"g": 1}:
                assert rec.metadata["g"] == 1
        assert not any(int(h.id[1:]) % 10 == 0 for h in hits)  # deleted rows never


def test_hybrid_arguments(col: keeldb.Collection) -> None:
    v = np.zeros(8, dtype=np.float32) + 1
    bad = [
        {"fusion": "max"},
        {"fusion": "weighted", "rrf_k": 3},
        {"rrf_k": -1},
        {"weights": [1.0]},
        {"weights": [1.0, -2.0]},
        {"k": 0},
    ]
    for kw in bad:
        with pytest.raises(InvalidArgumentError):
            col.hybrid_search("alpha", vector=v, **kw)
    with pytest.raises(InvalidArgumentError, match="vector"):
        col.hybrid_search("alpha")  # no embedding function: the vector is needed
