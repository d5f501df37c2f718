"""Cosine HNSW graphs store float16 copies; hits are re-scored against float32 vectors."""

from __future__ import annotations

import glob
import os

import faiss
import numpy as np
import pytest

import keeldb
from keeldb.index.exact import rescore
from keeldb.index.hnsw import build_hnsw, load_hnsw, save_hnsw, stores_exact_vectors
from keeldb.storage.fileio import OsFileSystem


@pytest.mark.parametrize(("metric", "exact"), [("cosine", False), ("l2", True), ("ip", True)])
def test_graph_storage_per_metric(metric: str, exact: bool) -> None:
    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    index = build_hnsw(vectors, metric, 8, 40)
    assert stores_exact_vectors(index) is exact
    assert isinstance(index, faiss.IndexHNSWFlat if exact else faiss.IndexHNSWSQ)


def _build(db_path: str, sample: dict, n: int = 2000) -> tuple[keeldb.Database, keeldb.Collection]:
    db = keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000, background=False)
    col = db.create_collection("c", dim=384, metric="cosine", m=16, ef_construction=100)
    base = sample["vectors"][:n]
    col.upsert([str(i) for i in range(n)], base, sample["meta"][:n])
    col.compact()
    return db, col


def _check_exact_distances(col: keeldb.Collection, sample: dict, n: int) -> None:
    """Every hit's distance is 1 - cos of its float32 vectors, to float32 rounding, and the
    hits are in ascending order of it (float16 scores are off by ~1e-4 here)."""
    base = sample["vectors"][:n].astype(np.float64)
    queries = sample["queries"][:40]
    for qi, hits in enumerate(col.search_batch(queries, k=10, ef=64)):
        assert len(hits) == 10
        want = 1.0 - base[[int(h.id) for h in hits]] @ queries[qi].astype(np.float64)
        got = np.array([h.distance for h in hits])
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
        assert got.tolist() == sorted(got.tolist())
    single = col.search(queries[0], k=10, ef=64)
    assert [h.id for h in single] == [h.id for h in col.search_batch(queries[:1], k=10, ef=64)[0]]


def test_cosine_segment_uses_float16_graph_and_exact_distances(db_path: str, sample: dict) -> None:
    db, col = _build(db_path, sample)
    try:
        segs = [s for s in col._state.segments if s.hnsw is not None]
        assert segs and all(not s.hnsw.exact_scores for s in segs)
        _check_exact_distances(col, sample, 2000)
        # The graph file holds 2 bytes per component, not 4.
        (path,) = glob.glob(os.path.join(col.directory, "*.hnsw"))
        assert os.path.getsize(path) < 2000 * 384 * 3
    finally:
        db.close()


def test_float16_merge_reorders_vectors_with_the_rows(db_path: str, sample: dict) -> None:
    """A merge into a float16 graph permutes the float32 vectors itself (the graph has no
    float32 copy to take them from): every row keeps its own vector and metadata."""
    db, col = _build(db_path, sample)
    try:
        col.delete([str(i) for i in range(0, 2000, 7)])
        col.upsert(
            [str(i) for i in range(2000, 2600)],
            sample["vectors"][2000:2600],
            sample["meta"][2000:2600],
        )
        col.compact()  # extends the float16 graph, reorders again
        gone = set(range(0, 2000, 7))
        records = col.get([str(i) for i in range(2600)])
        for i, rec in enumerate(records):
            if i in gone:
                assert rec is None
                continue
            assert rec is not None and rec.metadata == sample["meta"][i]
            np.testing.assert_allclose(rec.vector, sample["vectors"][i], rtol=0, atol=1e-6)
        for qi, hits in enumerate(col.search_batch(sample["queries"][:20], k=10, ef=64)):
            for h in hits:
                assert int(h.id) not in gone
                want = 1.0 - float(sample["vectors"][int(h.id)] @ sample["queries"][qi])
                assert abs(h.distance - want) < 2e-6
    finally:
        db.close()


def test_float32_graph_of_an_cosine_segment_written_by_0_1_still_works(
    db_path: str, sample: dict
) -> None:
    """Segments written by 0.1 have float32 cosine graphs: they load, answer with
    exact distances, and a merge extends them."""
    db, col = _build(db_path, sample)
    (seg,) = [s for s in col._state.segments if s.hnsw is not None]
    vectors = np.array(seg.vectors.array)
    directory = col.directory
    db.close()
    (path,) = glob.glob(os.path.join(directory, "*.hnsw"))
    old = faiss.IndexHNSWFlat(384, 16, faiss.METRIC_INNER_PRODUCT)
    old.hnsw.efConstruction = 100
    old.add(vectors)
    os.remove(path)
    save_hnsw(OsFileSystem(), path, old)
    assert load_hnsw(path, len(vectors), 384).exact_scores
    with keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000, background=False) as db2:
        col2 = db2.get_collection("c")
        (seg2,) = [s for s in col2._state.segments if s.hnsw is not None]
        assert seg2.hnsw.exact_scores and not seg2.rebuilt_index
        _check_exact_distances(col2, sample, 2000)
        col2.upsert([str(i) for i in range(2000, 2500)], sample["vectors"][2000:2500])
        col2.compact()
        _check_exact_distances(col2, sample, 2500)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_rescore_orders_rows_and_puts_missing_last(metric: str) -> None:
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    queries = rng.normal(size=(3, 8)).astype(np.float32)
    if metric == "cosine":
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    labels = np.array([[4, 9, 17, 2], [30, 1, -1, -1], [8, 5, 11, -1]], dtype=np.int64)

    def dist(q: np.ndarray, r: int) -> float:
        v = vectors[r].astype(np.float64)
        if metric == "cosine":
            return 1.0 - float(v @ q)
        if metric == "ip":
            return -float(v @ q)
        return float(np.linalg.norm(v - q))

    for lab in (labels, labels[:1]):  # with and without missing rows
        d, r = rescore(vectors, queries[: len(lab)], metric, lab)
        for qi in range(len(lab)):
            found = [x for x in lab[qi].tolist() if x >= 0]
            want = sorted(found, key=lambda x: dist(queries[qi].astype(np.float64), x))
            assert r[qi].tolist() == want + [-1] * (lab.shape[1] - len(found))
            np.testing.assert_allclose(
                d[qi, : len(found)], [dist(queries[qi], x) for x in want], atol=1e-5
            )
            assert np.isinf(d[qi, len(found) :]).all()
