"""Collections with ``quantization`` none / fp16 / sq8 under every metric: distances exact,
recall against exact search, reopen, compaction, missing-graph rebuild, manifests,
exist_ok, backup/restore, check, and stats()' byte fields."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest

import keeldb
from keeldb.errors import AlreadyExistsError, InvalidArgumentError
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.manifest import read_manifest, write_manifest

QUANTIZATIONS = ["none", "fp16", "sq8"]
METRICS = ["cosine", "l2", "ip"]
N, DIM = 2400, 24
OPTS = {"memtable_rows": 800, "hnsw_min_rows": 800, "background": False}


def _data(metric: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # clustered, with an offset: l2 / ip see non-centred data, as real embeddings are
    centres = rng.normal(size=(12, DIM)) * 3 + 1.5
    vectors = (centres[rng.integers(0, 12, N)] + rng.normal(size=(N, DIM))).astype(np.float32)
    queries = (centres[rng.integers(0, 12, 40)] + rng.normal(size=(40, DIM))).astype(np.float32)
    if metric == "cosine":
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return vectors, queries


def _distances(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    v, q = vectors.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        return 1.0 - v @ q
    if metric == "ip":
        return -(v @ q)
    return np.sqrt(((v - q) ** 2).sum(axis=1))


def _create(db: keeldb.Database, metric: str, quantization: str) -> keeldb.Collection:
    return db.create_collection(
        "c", dim=DIM, metric=metric, m=8, ef_construction=60, quantization=quantization
    )


def _check_search(
    col: keeldb.Collection, metric: str, vectors: np.ndarray, queries: np.ndarray, live: set[int]
) -> None:
    """Every hit's distance is its float32 distance (to float32 rounding), ascending, and
    recall@10 against exact search is high: a walk whose candidates were not re-scored
    (distances off) or re-scored against the wrong rows (recall) fails."""
    found = 0
    for qi, hits in enumerate(col.search_batch(queries, k=10, ef=48)):
        assert len(hits) == 10
        rows = [int(h.id) for h in hits]
        assert set(rows) <= live
        got = np.array([h.distance for h in hits])
        want = _distances(metric, vectors[rows], queries[qi])
        scale = max(1.0, float(np.abs(want).max()))
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-6 * scale)
        assert got.tolist() == sorted(got.tolist())
        exact = {h.id for h in col.search(queries[qi], k=10, exact=True)}
        found += len(exact & {h.id for h in hits})
    assert found / (10 * len(queries)) >= 0.9


def _graph_kinds(col: keeldb.Collection) -> list[str]:
    return [s.hnsw.quantization for s in col._state.segments if s.hnsw is not None]


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
@pytest.mark.parametrize("metric", METRICS)
def test_quantized_collection_lifecycle(db_path: str, metric: str, quantization: str) -> None:
    vectors, queries = _data(metric)
    ids = [str(i) for i in range(N)]
    with keeldb.open(db_path, **OPTS) as db:
        col = _create(db, metric, quantization)
        assert col.info().quantization == quantization
        col.upsert(ids[:1600], vectors[:1600])
        col.compact()
        assert _graph_kinds(col) == [quantization]
        _check_search(col, metric, vectors, queries, set(range(1600)))
        # a merge extends the graph (same kind), after deletes: still exact
        col.delete(ids[0:1600:9])
        col.upsert(ids[1600:], vectors[1600:])
        col.compact()
        assert _graph_kinds(col) == [quantization]
        live = set(range(N)) - set(range(0, 1600, 9))
        _check_search(col, metric, vectors, queries, live)
        before = [[h.id for h in hits] for hits in col.search_batch(queries, k=10, ef=48)]
    with keeldb.open(db_path, **OPTS) as db:  # reopen
        col = db.get_collection("c")
        assert col.config.quantization == quantization
        assert [[h.id for h in hits] for hits in col.search_batch(queries, k=10, ef=48)] == before
        (path,) = glob.glob(os.path.join(col.directory, "*.hnsw"))
    os.remove(path)  # a missing graph is rebuilt from the vectors, as the same kind
    with keeldb.open(db_path, **OPTS) as db:
        col = db.get_collection("c")
        (seg,) = [s for s in col._state.segments if s.hnsw is not None]
        assert seg.rebuilt_index and seg.hnsw.quantization == quantization
        _check_search(col, metric, vectors, queries, live)


def test_manifest_records_quantization_and_old_manifests_read_as_the_old_default(
    db_path: str,
) -> None:
    with keeldb.open(db_path, **OPTS) as db:
        for name, metric in (("a", "cosine"), ("b", "l2")):
            db.create_collection(name, dim=4, metric=metric)
        db.create_collection("s", dim=4, metric="ip", quantization="sq8")
        dirs = {n: db.get_collection(n).directory for n in ("a", "b", "s")}
    fs = OsFileSystem()
    assert read_manifest(fs, dirs["s"]).config.quantization == "sq8"
    doc = json.loads(read_manifest(fs, dirs["s"]).to_json())
    assert doc["config"]["quantization"] == "sq8"
    for name, want in (("a", "fp16"), ("b", "none")):
        manifest = read_manifest(fs, dirs[name])
        assert manifest.config.quantization == want
        # what a manifest written before the field existed holds: no "quantization"
        raw = json.loads(manifest.to_json())
        del raw["config"]["quantization"]
        old = type(manifest).from_json(json.dumps(raw).encode(), "MANIFEST")
        assert old.config.quantization == want
        write_manifest(fs, dirs[name], old)
    with keeldb.open(db_path, **OPTS) as db:
        assert db.get_collection("a").info().quantization == "fp16"
        assert db.get_collection("b").info().quantization == "none"


def test_unknown_quantization_in_a_manifest_is_damage(db_path: str) -> None:
    with keeldb.open(db_path, **OPTS) as db:
        directory = db.create_collection("c", dim=4).directory
    fs = OsFileSystem()
    raw = json.loads(read_manifest(fs, directory).to_json())
    raw["config"]["quantization"] = "pq"
    with pytest.raises(keeldb.CorruptionError, match="quantization"):
        type(read_manifest(fs, directory)).from_json(json.dumps(raw).encode(), "MANIFEST")


def test_exist_ok_compares_quantization(db: keeldb.Database) -> None:
    db.create_collection("c", dim=4, metric="l2", quantization="sq8")
    assert db.create_collection("c", dim=4, metric="l2", quantization="sq8", exist_ok=True)
    with pytest.raises(AlreadyExistsError, match=r"quantization='sq8' \(asked 'none'\)"):
        db.create_collection("c", dim=4, metric="l2", exist_ok=True)  # None: l2's default
    with pytest.raises(AlreadyExistsError, match="quantization"):
        db.create_collection("c", dim=4, metric="l2", quantization="fp16", exist_ok=True)
    db.create_collection("d", dim=4)  # cosine: fp16 by default
    assert db.create_collection("d", dim=4, quantization="fp16", exist_ok=True)


@pytest.mark.parametrize("bad", ["int8", "", 8, "SQ8"])
def test_bad_quantization_is_refused(db: keeldb.Database, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="quantization"):
        db.create_collection("c", dim=4, quantization=bad)  # type: ignore[arg-type]


def test_backup_restore_and_check_keep_quantization(db_path: str, tmp_path: object) -> None:
    vectors, queries = _data("l2")
    with keeldb.open(db_path, **OPTS) as db:
        col = _create(db, "l2", "sq8")
        col.upsert([str(i) for i in range(N)], vectors)
        col.compact()
        want = [[h.id for h in hits] for hits in col.search_batch(queries, k=10)]
        backup = os.path.join(str(tmp_path), "bk")
        db.backup(backup)
    report = keeldb.check(db_path)
    assert report.ok and not report.warnings, report
    restored = os.path.join(str(tmp_path), "restored")
    keeldb.restore(backup, restored)
    with keeldb.open(restored, **OPTS) as db:
        col = db.get_collection("c")
        assert col.info().quantization == "sq8" and _graph_kinds(col) == ["sq8"]
        assert [[h.id for h in hits] for hits in col.search_batch(queries, k=10)] == want


def test_check_warns_of_a_graph_of_another_kind(db_path: str) -> None:
    vectors, _ = _data("l2")
    with keeldb.open(db_path, **OPTS) as db:
        col = _create(db, "l2", "sq8")
        col.upsert([str(i) for i in range(N)], vectors)
        col.compact()
        directory = col.directory
    fs = OsFileSystem()
    manifest = read_manifest(fs, directory)
    raw = json.loads(manifest.to_json())
    raw["config"]["quantization"] = "none"
    write_manifest(fs, directory, type(manifest).from_json(json.dumps(raw).encode(), "M"))
    report = keeldb.check(db_path)
    assert report.ok
    assert any("keeps sq8 vectors, the collection asks none" in w for w in report.warnings)
    with keeldb.open(db_path, **OPTS) as db:  # a merge converts it to the asked kind
        col = db.get_collection("c")
        assert _graph_kinds(col) == ["sq8"]
        col.upsert(["new"], vectors[:1])
        col.compact()
        assert _graph_kinds(col) == ["none"]


def test_stats_report_resident_and_disk_bytes_per_part(db_path: str) -> None:
    vectors, queries = _data("l2")
    with keeldb.open(db_path, **OPTS) as db:
        col = _create(db, "l2", "sq8")
        meta = [{"k": i % 5} for i in range(N)]
        col.upsert([str(i) for i in range(N)], vectors, meta)
        col.compact()
        col.delete(["0", "1"])
        col.upsert(["fresh"], vectors[:1])
        col.search_batch(queries, k=10, filter={"k": 2})
        stats = col.stats()
        (seg,) = [s for s in stats.segments if s.kind == "hnsw"]
        files = {
            ext: os.path.getsize(p)
            for p in glob.glob(os.path.join(col.directory, "seg-*"))
            for ext in [p.rsplit(".", 1)[1]]
            if ext in ("vec", "hnsw", "ids", "meta", "cols")
        }
        assert seg.parts["vectors"].disk_bytes == files["vec"]
        assert seg.parts["graph"].disk_bytes == files["hnsw"]
        assert seg.parts["ids"].disk_bytes == files["ids"]
        assert seg.parts["metadata"].disk_bytes == files["meta"]
        assert seg.parts["columns"].disk_bytes == files["cols"]
        # the graph was walked, so some of it is resident; never more than the file plus
        # its owned offsets and levels
        graph = seg.parts["graph"].resident_bytes
        assert 0 < graph <= files["hnsw"] + N * 16 + 4096
        assert seg.parts["filter_cache"].resident_bytes > 0  # the filter's mask is cached
        assert seg.parts["columns"].resident_bytes > 0
        assert seg.parts["tombstones"].resident_bytes == N
        assert seg.resident_bytes == sum(p.resident_bytes for p in seg.parts.values())
        (mem,) = [s for s in stats.segments if s.kind == "memtable"]
        assert mem.parts["vectors"].resident_bytes > 0
        assert all(p.disk_bytes == 0 for p in mem.parts.values())
        for name, total in stats.parts.items():
            units = [s.parts[name] for s in stats.segments if name in s.parts]
            assert total.resident_bytes == sum(p.resident_bytes for p in units)
            assert total.disk_bytes == sum(p.disk_bytes for p in units)
        assert stats.resident_bytes == sum(s.resident_bytes for s in stats.segments)
        # an sq8 graph file holds a byte per component, plus the graph's links
        assert files["hnsw"] < N * (DIM + 8 * 2 * 4 + 64)


def test_unread_mapped_pages_are_not_resident(db_path: str) -> None:
    """Right after open, nothing has read the float32 vectors: their part is (nearly)
    not resident, though its file is mapped (2.4 MB: far more than the kernel's
    read-ahead around the header)."""
    vectors = np.random.default_rng(1).normal(size=(N, 256)).astype(np.float32)
    with keeldb.open(db_path, **OPTS) as db:
        col = db.create_collection("c", dim=256, metric="l2", m=8, ef_construction=40)
        col.upsert([str(i) for i in range(N)], vectors)
        col.compact()
        directory = col.directory
    for path in glob.glob(os.path.join(directory, "seg-*")):
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    with keeldb.open(db_path, **OPTS, verify=False) as db:
        col = db.get_collection("c")
        (seg,) = [s for s in col.stats().segments if s.kind == "hnsw"]
        size = seg.parts["vectors"].disk_bytes
        assert seg.parts["vectors"].resident_bytes < size // 2
        (s,) = [s for s in col._state.segments if s.kind == "hnsw"]
        np.asarray(s.vectors.array).sum()  # read every vector: now all resident
        (seg,) = [s for s in col.stats().segments if s.kind == "hnsw"]
        assert seg.parts["vectors"].resident_bytes >= size - 4096
