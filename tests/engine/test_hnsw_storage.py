"""Cosine HNSW graphs store float16 copies; hits are re-scored against float32 vectors."""

from __future__ import annotations

import glob
import os

import faiss
import numpy as np
import pytest

import keeldb
from keeldb.errors import CorruptionError
from keeldb.index.exact import rescore
from keeldb.index.hnsw import HnswIndex
from keeldb.storage import segment_files
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import HEADER_SIZE
from keeldb.storage.framed import pack_header, unpack_header


@pytest.mark.parametrize(("metric", "exact"), [("cosine", False), ("l2", True), ("ip", True)])
def test_graph_storage_per_metric(metric: str, exact: bool) -> None:
    vectors = np.random.default_rng(0).normal(size=(300, 8)).astype(np.float32)
    graph = HnswIndex.build(vectors, metric, 8, 40)
    assert graph.exact_scores is exact
    assert isinstance(graph.index, faiss.IndexHNSWFlat if exact else faiss.IndexHNSWSQ)


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


def _written_by_0_1(db_path: str, sample: dict) -> str:
    """Build the 2,000-row collection, closed, with its graph replaced by the float32
    graph 0.1 wrote for cosine (trailer version 1). Returns the graph file's path."""
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
    HnswIndex(old, "cosine").save(OsFileSystem(), path)
    return path


def test_float32_graph_of_a_cosine_segment_written_by_0_1_still_works(
    db_path: str, sample: dict
) -> None:
    """Segments written by 0.1 have float32 cosine graphs: they load and answer with
    exact distances; a merge builds the collection's kind of graph (its manifest has no
    ``quantization``, which reads as cosine's default, fp16) over every row."""
    path = _written_by_0_1(db_path, sample)
    assert HnswIndex.load(path, 2000, 384, "cosine").exact_scores
    with keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000, background=False) as db2:
        col2 = db2.get_collection("c")
        (seg2,) = [s for s in col2._state.segments if s.hnsw is not None]
        assert seg2.hnsw.exact_scores and not seg2.rebuilt_index
        _check_exact_distances(col2, sample, 2000)
        col2.upsert([str(i) for i in range(2000, 2500)], sample["vectors"][2000:2500])
        col2.compact()
        _check_exact_distances(col2, sample, 2500)
        # the merge converted the old graph to the collection's kind: float16, version 2
        (seg3,) = [s for s in col2._state.segments if s.hnsw is not None]
        assert seg3.hnsw.quantization == "fp16" and seg3.hnsw.header.version == 2
        assert col2.config.quantization == "fp16"


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


def test_filtered_and_short_searches_on_a_float16_graph_are_exact(
    db_path: str, sample: dict
) -> None:
    """The filtered HNSW plan re-scores too, and so do searches whose graph walk comes back
    short (-1 labels) after heavy deletes, before the exact fallback fills them."""
    db, col = _build(db_path, sample)
    try:
        base = sample["vectors"][:2000].astype(np.float64)
        queries = sample["queries"][:30]
        flt = {"year": {"$gte": 2015}}  # most rows: the HNSW plan with a selector
        stats: list[keeldb.SearchStats] = []
        col.on_search(stats.append)
        for qi, hits in enumerate(col.search_batch(queries, k=10, ef=64, filter=flt)):
            assert len(hits) == 10 and all(h.metadata["year"] >= 2015 for h in hits)
            want = 1.0 - base[[int(h.id) for h in hits]] @ queries[qi].astype(np.float64)
            np.testing.assert_allclose([h.distance for h in hits], want, rtol=0, atol=2e-6)
        assert any(p.startswith("hnsw-filtered") for p in stats[-1].plans.values())
        # delete all but 30 rows of the graph: fewer live rows than k, and walks (at ef
        # raised for 1.5 % live rows) find fewer still
        keep = set(range(0, 2000, 67))
        col.delete([str(i) for i in range(2000) if i not in keep])
        short = col.search_batch(queries, k=40, ef=16)
        assert any("exact-fallback" in p for p in stats[-1].plans.values())
        for qi, hits in enumerate(short):
            assert len(hits) == len(keep) and {int(h.id) for h in hits} <= keep
            want = 1.0 - base[[int(h.id) for h in hits]] @ queries[qi].astype(np.float64)
            got = [h.distance for h in hits]
            np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
            assert got == sorted(got)
            exact = col.search(queries[qi], k=40, exact=True)
            assert [h.id for h in hits] == [h.id for h in exact]
    finally:
        db.close()


def test_damaged_float32_cosine_graph_is_rebuilt_as_float16(db_path: str, sample: dict) -> None:
    path = _written_by_0_1(db_path, sample)
    with open(path, "r+b") as f:  # damage the graph region
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with keeldb.open(db_path, background=False) as db2:
        col2 = db2.get_collection("c")
        (seg2,) = [s for s in col2._state.segments if s.hnsw is not None]
        assert seg2.rebuilt_index and not seg2.hnsw.exact_scores
        _check_exact_distances(col2, sample, 2000)


def test_trailer_version_marks_float16_graphs(tmp_path: object, sample: dict) -> None:
    """Version 2 in the trailer means a float16 graph: 0.1 (which knows only version 1)
    refuses the file and rebuilds a float32 graph rather than answer with float16
    distances. A trailer that disagrees with the index kind is damage."""
    vectors = sample["vectors"][:500]
    fs = OsFileSystem()
    p16 = os.path.join(str(tmp_path), "a.hnsw")
    HnswIndex.build(vectors, "cosine", 8, 40).save(fs, p16)
    f16 = HnswIndex.load(p16, 500, 384, "cosine")
    assert f16.header.version == 2 and not f16.exact_scores
    p32 = os.path.join(str(tmp_path), "b.hnsw")
    HnswIndex.build(vectors, "ip", 8, 40).save(fs, p32)
    assert HnswIndex.load(p32, 500, 384, "ip").header.version == 1
    with open(p16, "rb") as f:
        raw = f.read()
    with pytest.raises(CorruptionError, match="format version 2"):
        unpack_header(raw[-HEADER_SIZE:], b"KEELHNSW", p16)  # what 0.1 does
    # relabel the float16 file as version 1: refused as damage
    h = f16.header
    relabelled = type(h)(
        h.magic, 1, h.flags, h.rows, h.aux, h.payload_len, h.payload_crc, h.aux2, h.aux3
    )
    with open(p16, "r+b") as f:
        f.seek(len(raw) - HEADER_SIZE)
        f.write(pack_header(relabelled))
    with pytest.raises(CorruptionError, match="disagrees with the index kind"):
        HnswIndex.load(p16, 500, 384, "cosine")


def test_float16_sizes_in_stats_and_payload_bytes(db_path: str, sample: dict) -> None:
    db, col = _build(db_path, sample)
    try:
        (seg,) = [s for s in col._state.segments if s.hnsw is not None]
        assert seg.hnsw.stats().memory_bytes < 2000 * (384 * 2 + 300)
        storage = seg.hnsw.header.payload_len - seg.hnsw.header.aux3
        assert 2000 * 384 * 2 <= storage < 2000 * 384 * 2 + 4096
        assert seg.payload_bytes == seg.vectors.header.payload_len + storage
    finally:
        db.close()


def test_reordered_vectors_are_written_a_slice_at_a_time(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(1000, 16)).astype(np.float32)
    order = rng.permutation(1000)
    monkeypatch.setattr(segment_files, "GATHER_BYTES", 64 * 7)  # 7 rows per slice
    directory = str(tmp_path)
    size = segment_files.write_vectors(OsFileSystem(), directory, 3, vectors, order)
    mapped = segment_files.map_vectors(directory, 3, 1000, 16)
    mapped.verify()
    assert size == os.path.getsize(mapped.path)
    np.testing.assert_array_equal(mapped.array, vectors[order])


def test_planner_prices_a_float16_walk_cheaper() -> None:
    """Between the two graphs' break-even row counts, a float16 graph is walked while a
    float32 one would have its matching rows scanned exactly."""
    from keeldb.engine.planner import choose_plan

    assert choose_plan(1300, 64, 1, 384, False, fp16=False) == "exact"
    assert choose_plan(1300, 64, 1, 384, False, fp16=True) == "hnsw"
    assert choose_plan(900, 64, 1, 384, False, fp16=True) == "exact"
    assert choose_plan(2000, 64, 1, 384, False, fp16=False) == "hnsw"
