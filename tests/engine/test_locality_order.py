"""HNSW segments store their rows in breadth-first graph order (locality)."""

from __future__ import annotations

import faiss
import numpy as np

import keeldb
from keeldb.index.hnsw import HnswIndex


def test_locality_order_is_a_breadth_first_permutation() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3000, 16)).astype(np.float32)
    graph = HnswIndex.build(vectors, "l2", 8, 40)
    index = graph.index
    order = graph.locality_order()
    assert sorted(order.tolist()) == list(range(3000))
    assert order[0] == index.hnsw.entry_point
    # every row after the first is a level-0 neighbour of an earlier row (one component)
    offsets = faiss.vector_to_array(index.hnsw.offsets)
    nbrs = faiss.vector_to_array(index.hnsw.neighbors)
    width = int(faiss.vector_to_array(index.hnsw.cum_nneighbor_per_level)[1])
    pos = np.empty(3000, dtype=np.int64)
    pos[order] = np.arange(3000)
    for row in order[1:50].tolist():
        linked = [
            int(v)
            for u in range(3000)
            if pos[u] < pos[row]
            for v in nbrs[offsets[u] : offsets[u] + width]
            if v == row
        ]
        assert linked, f"row {row} placed before any neighbour reached it"
    # relabelling keeps every search answer (same rows, new numbers)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    index.hnsw.efSearch = 64
    d0, l0 = index.search(queries, 10)
    index.permute_entries(order)
    d1, l1 = index.search(queries, 10)
    np.testing.assert_array_equal(order[l1], l0)
    np.testing.assert_allclose(d1, d0)
    np.testing.assert_array_equal(graph.stored_vectors(), vectors[order])


def test_merged_hnsw_segment_keeps_ids_vectors_metadata_and_deletes(db_path: str) -> None:
    rng = np.random.default_rng(1)
    n, dim = 2500, 16
    base = rng.normal(size=(n, dim)).astype(np.float32)
    with keeldb.open(db_path, memtable_rows=500, hnsw_min_rows=1000, background=False) as db:
        col = db.create_collection("c", dim=dim, metric="l2", m=8, ef_construction=40)
        col.upsert([str(i) for i in range(n)], base, [{"i": i} for i in range(n)])
        col.delete([str(i) for i in range(0, n, 9)])
        col.compact()
        col.delete([str(i) for i in range(1, n, 11)])
        col.upsert([str(i) for i in range(n, n + 600)], rng.normal(size=(600, dim)), None)
        col.compact()  # extends the HNSW segment, reorders again
        assert {s.kind for s in col.stats().segments if s.rows} == {"hnsw"}
        gone = set(range(0, n, 9)) | set(range(1, n, 11))
        live = [i for i in range(n) if i not in gone]
        assert col.count() == len(live) + 600
        records = col.get([str(i) for i in range(n)])
        for i, rec in enumerate(records):
            if i in gone:
                assert rec is None
            else:
                assert rec is not None and rec.metadata == {"i": i}
                np.testing.assert_array_equal(rec.vector, base[i])
        found = 0
        for i in live[:300]:
            hits = col.search(base[i], k=3, ef=64)
            found += hits[0].id == str(i)
            for hit in hits:  # each hit's id, vector, metadata and distance agree
                rec = col.get([hit.id])[0]
                assert rec is not None and rec.metadata == hit.metadata
                dist = float(np.linalg.norm(rec.vector - base[i]))
                assert abs(dist - hit.distance) < 1e-4, (i, hit)
            assert col.search(base[i], k=1, exact=True)[0].id == str(i)
        assert found >= 0.95 * 300  # HNSW (m=8) finds the row itself almost always
