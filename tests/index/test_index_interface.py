"""Exact, float32 and float16 HNSW and compact indexes answer through one interface."""

from __future__ import annotations

import os

import numpy as np
import pytest

from keeldb.index.base import Allowed, VectorIndex
from keeldb.index.compact import CompactIndex
from keeldb.index.exact import ExactIndex
from keeldb.index.hnsw import HnswIndex
from keeldb.storage.fileio import OsFileSystem


def _data(metric: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    queries = rng.normal(size=(12, 16)).astype(np.float32)
    if metric == "cosine":
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, queries


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_every_kind_answers_through_the_interface(metric: str) -> None:
    vectors, queries = _data(metric)
    exact = ExactIndex(vectors, metric)
    graph = HnswIndex.build(vectors, metric, 16, 100)
    assert graph.exact_scores is (metric != "cosine")  # cosine graphs keep float16
    rows = np.arange(0, 600, 3)
    mask = np.zeros(600, dtype=bool)
    mask[rows] = True
    compact = CompactIndex(vectors, rows, metric)
    want_d, want_r = exact.search(queries, 10, 0, None)
    kinds: list[VectorIndex] = [exact, graph]
    for index in kinds:
        d, r = index.search(queries, 10, 200, None)
        assert r.shape == (12, 10) and _recall(r, want_r) >= 0.95
        tol = 1e-4 if index.exact_scores else 5e-2
        assert np.all(np.diff(d, axis=1) >= -1e-6)  # ascending
        np.testing.assert_allclose(d[:, 0], want_d[:, 0], atol=tol)
    allowed = Allowed(mask, len(rows))
    fd, fr = exact.search(queries, 10, 0, allowed)
    assert set(fr.ravel().tolist()) <= set(rows.tolist())
    for index in (graph, compact):
        d, r = index.search(queries, 10, 200, allowed)
        assert set(r.ravel().tolist()) <= set(rows.tolist())
        assert _recall(r, fr) >= 0.9
    # the compact copy re-ranks with float32: its distances are exact
    cd, cr = compact.search(queries, 10, 0)
    same = cr == fr
    np.testing.assert_allclose(cd[same], fd[same], rtol=1e-5, atol=1e-5)


def test_allowed_rows_bitmap_and_dead_exclusion() -> None:
    dead = np.zeros(20, dtype=bool)
    dead[[1, 5, 19]] = True
    live = Allowed.live(dead, 3)
    assert live.count == 17 and live.dead is dead
    np.testing.assert_array_equal(live.mask, ~dead)
    np.testing.assert_array_equal(live.rows(), np.flatnonzero(~dead))
    bits = np.unpackbits(live.bitmap(), bitorder="little")[:20].astype(bool)
    np.testing.assert_array_equal(bits, ~dead)
    vectors, queries = _data("l2")
    vectors = vectors[:20]
    _, r = ExactIndex(vectors, "l2").search(queries, 20, 0, live)
    assert r.shape[1] == 20
    assert not set(r[r >= 0].tolist()) & {1, 5, 19}
    assert (r < 0).sum(axis=1).tolist() == [3] * len(queries)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_graph_save_load_extend_keep_answers_and_kind(tmp_path: object, metric: str) -> None:
    vectors, queries = _data(metric)
    built = HnswIndex.build(vectors[:400], metric, 16, 100)
    path = os.path.join(str(tmp_path), "g.hnsw")
    size = built.save(OsFileSystem(), path)
    assert size == os.path.getsize(path)
    loaded = HnswIndex.load(path, 400, 16, metric)
    loaded.verify_storage()
    assert loaded.exact_scores == built.exact_scores and loaded.storage_bytes > 0
    d0, r0 = built.search(queries, 10, 64, None)
    d1, r1 = loaded.search(queries, 10, 64, None)
    np.testing.assert_array_equal(r0, r1)
    np.testing.assert_allclose(d0, d1)
    grown = loaded.extend(vectors[400:])
    assert grown.index.ntotal == 600 and grown.exact_scores == built.exact_scores
    want = ExactIndex(vectors, metric).search(queries, 10, 0, None)[1]
    assert _recall(grown.search(queries, 10, 200, None)[1], want) >= 0.95
    stats = loaded.stats()
    assert sum(stats.levels.values()) == 400 and stats.avg_edges > 0
    assert loaded.memory_bytes() == stats.memory_bytes
