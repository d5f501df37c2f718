"""Documents stored with records: upsert, get, scan, search, seal, merge, reopen, crash."""

from __future__ import annotations

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError


def _vecs(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _docs_of(col: keeldb.Collection, ids: list[str]) -> list[str | None]:
    return [None if r is None else r.document for r in col.get(ids)]


def test_upsert_get_keep_and_replace(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=8)
        col.upsert(["a", "b", "c"], _vecs(3), documents=["alpha", None, ""])
        assert _docs_of(col, ["a", "b", "c"]) == ["alpha", None, ""]
        # None (argument or entry) keeps the document; a string replaces it
        col.upsert(["a"], _vecs(1, seed=1))
        col.upsert(["c"], _vecs(1, seed=2), documents=[None])
        col.upsert(["b"], _vecs(1, seed=3), documents=["beta"])
        assert _docs_of(col, ["a", "b", "c"]) == ["alpha", "beta", ""]
        # update() changes metadata only: the document stays
        col.update(["a"], [{"x": 1}])
        rec = col.get(["a"])[0]
        assert rec is not None and rec.document == "alpha" and rec.metadata == {"x": 1}
        # a delete then an upsert without a document: no document
        col.delete(["a"])
        col.upsert(["a"], _vecs(1))
        assert _docs_of(col, ["a"]) == [None]


def test_keep_within_one_transaction(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=8)
        with col.transaction() as tx:
            tx.upsert(["a"], _vecs(1), documents=["first"])
            tx.upsert(["a"], _vecs(1, seed=1))  # keeps "first" (staged earlier)
            tx.upsert(["b"], _vecs(1), documents=["bee"])
            tx.delete(["b"])
            tx.upsert(["b"], _vecs(1))  # deleted before: no document
        assert _docs_of(col, ["a", "b"]) == ["first", None]


def test_documents_validation(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=8)
        for bad in ("text", ["a"], [1, 2], ["\ud800", "x"]):
            with pytest.raises(InvalidArgumentError):
                col.upsert(["a", "b"], _vecs(2), documents=bad)  # type: ignore[arg-type]
        assert col.count() == 0


def test_search_returns_documents(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        v = _vecs(20)
        col.upsert([f"i{j}" for j in range(20)], v, documents=[f"doc {j}" for j in range(20)])
        hits = col.search(v[3], k=3)
        assert hits[0].id == "i3" and hits[0].document == "doc 3" and hits[0].score is None
        assert all(h.document == f"doc {h.id[1:]}" for h in hits)
        assert all(h.document is None for h in col.search(v[3], k=3, with_documents=False))
        with pytest.raises(InvalidArgumentError):
            col.search(v[3], k=3, with_documents=1)  # type: ignore[arg-type]
        batch = col.search_batch(v[:2], k=1)
        assert [b[0].document for b in batch] == ["doc 0", "doc 1"]
        page = col.scan(limit=5)
        assert [r.document for r in page.records] == [f"doc {r.id[1:]}" for r in page.records]


@pytest.mark.parametrize("hnsw", [False, True])
def test_documents_survive_seal_merge_and_reopen(db_path: str, hnsw: bool) -> None:
    n = 600
    v = _vecs(n)
    ids = [f"i{j}" for j in range(n)]
    docs: list[str | None] = [f"text number {j}" if j % 3 else None for j in range(n)]
    opts = {"background": False, "memtable_rows": 128, "hnsw_min_rows": 200 if hnsw else 10**6}
    with keeldb.open(db_path, **opts) as db:  # type: ignore[arg-type]
        col = db.create_collection("c", dim=8, metric="l2")
        for s in range(0, n, 100):
            col.upsert(ids[s : s + 100], v[s : s + 100], documents=docs[s : s + 100])
        col.delete(ids[:10])
        col.upsert(ids[10:20], v[10:20])  # keeps documents across units
        col.compact()
        kinds = {s.kind for s in col.stats().segments}
        assert ("hnsw" in kinds) == hnsw
        expect = [None] * 10 + docs[10:]
        assert _docs_of(col, ids) == expect
        hits = col.search(v[50], k=1)
        assert hits[0].id == "i50" and hits[0].document == docs[50]
    with keeldb.open(db_path, **opts) as db:  # type: ignore[arg-type]
        col = db.get_collection("c")
        got = _docs_of(col, ids)
        assert got[10:] == expect[10:] and got[:10] == [None] * 10
        assert col.get(ids[:10]) == [None] * 10


def test_documents_replayed_after_crash(db_path: str) -> None:
    db = keeldb.open(db_path, background=False, memtable_rows=64)
    col = db.create_collection("c", dim=8)
    ids = [f"i{j}" for j in range(150)]
    col.upsert(ids, _vecs(150), documents=[f"d{j}" for j in range(150)])
    col.upsert(["i1"], _vecs(1), documents=["changed"])
    col.delete(["i2"])
    db.abandon()  # no shutdown: the WAL tail is replayed at open
    with keeldb.open(db_path, background=False, memtable_rows=64) as db2:
        col2 = db2.get_collection("c")
        got = _docs_of(col2, ids)
        assert got[1] == "changed" and got[2] is None
        assert got[3:] == [f"d{j}" for j in range(3, 150)] and got[0] == "d0"


def test_repair_keeps_documents(db_path: str) -> None:
    db = keeldb.open(db_path, background=False, memtable_rows=50)
    col = db.create_collection("c", dim=8)
    ids = [f"i{j}" for j in range(80)]
    col.upsert(ids, _vecs(80), documents=[f"d{j}" for j in range(80)])  # sealed: .docs
    col.upsert(["i0"], _vecs(1), documents=["wal"])  # in the WAL only
    col.upsert(["i1"], _vecs(1))  # keeps its sealed document
    db.abandon()
    (report,) = keeldb.repair(db_path, "c", force=True)
    assert report.status == "repaired"
    with keeldb.open(db_path, background=False) as db2:
        got = _docs_of(db2.get_collection("c"), ids)
        assert got == ["wal", "d1"] + [f"d{j}" for j in range(2, 80)]
