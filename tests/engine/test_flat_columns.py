"""Flat segments build their filter columns in memory; HNSW segments keep a column file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import keeldb
from keeldb.filtering import MetadataColumns
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.segment_files import write_columns

OPTS = {"memtable_rows": 100, "hnsw_min_rows": 10**6, "background": False}


def _coldir(db_path: str) -> Path:
    return Path(db_path) / "workspaces" / "default" / "c"


def _fill(col: keeldb.Collection, n: int, start: int = 0) -> None:
    rng = np.random.default_rng(start)
    col.upsert(
        [str(i) for i in range(start, start + n)],
        rng.normal(size=(n, 8)).astype(np.float32),
        [{"g": i % 3, "s": f"v{i % 5}"} for i in range(start, start + n)],
    )


def _filtered_ids(col: keeldb.Collection) -> list[str]:
    return sorted(h.id for h in col.search(np.ones(8, np.float32), k=1000, filter={"g": 1}))


def test_sealed_flat_segment_has_no_column_file_and_filters_correctly(db_path: str) -> None:
    with keeldb.open(db_path, **OPTS) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        _fill(col, 250)
        col.flush()
        col._maintainer.seal_once()  # type: ignore[union-attr]
        kinds = {s.kind for s in col.stats().segments if s.rows}
        assert "flat" in kinds
        names = os.listdir(_coldir(db_path))
        assert any(n.endswith(".meta") for n in names)
        assert not any(n.endswith(".cols") for n in names), names
        want = sorted(str(i) for i in range(250) if i % 3 == 1)
        assert _filtered_ids(col) == want
        assert col.count(filter={"s": "v2"}) == 50
    assert keeldb.check(db_path).ok
    with keeldb.open(db_path, **OPTS) as db:
        assert _filtered_ids(db.get_collection("c")) == want


def test_seal_adopts_the_memtable_columns_a_filtered_search_built(db_path: str) -> None:
    with keeldb.open(db_path, **dict(OPTS, memtable_rows=1000)) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        _fill(col, 100)  # stays in the memtable
        before = _filtered_ids(col)  # builds the memtable's columns
        mem = col._state.active
        built = mem.columns_if_built()
        assert built is not None and len(built) == 100
        with col.versions.locked():
            col.writes.freeze()
        col._maintainer.seal_once()  # type: ignore[union-attr]
        segs = col._state.segments
        assert len(segs) == 1 and segs[0].kind == "flat"
        assert segs[0]._columns is built  # adopted, not rebuilt from the metadata
        assert _filtered_ids(col) == before


def test_seal_after_deletes_builds_fresh_columns(db_path: str) -> None:
    """Rows deleted before the seal are not copied: the memtable's columns (one per
    memtable row) no longer line up, so the segment builds its own."""
    with keeldb.open(db_path, **dict(OPTS, memtable_rows=1000)) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        _fill(col, 100)
        _filtered_ids(col)
        col.delete(["1", "4", "50"])
        with col.versions.locked():
            col.writes.freeze()
        col._maintainer.seal_once()  # type: ignore[union-attr]
        seg = col._state.segments[0]
        assert seg.rows == 97 and seg._columns is None
        want = sorted(str(i) for i in range(100) if i % 3 == 1 and i not in (1, 4, 50))
        assert _filtered_ids(col) == want
        assert len(seg._columns) == 97


def test_flat_segment_column_file_from_older_versions_is_still_used_and_checked(
    db_path: str,
) -> None:
    with keeldb.open(db_path, **OPTS) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        _fill(col, 100)
        col._maintainer.seal_once()  # type: ignore[union-attr]
        seg = col._state.segments[0]
        metas = seg.metadata_many(list(range(seg.rows)))
        # what 0.1.0 wrote for every segment
        write_columns(
            OsFileSystem(),
            str(_coldir(db_path)),
            seg.segment_id,
            MetadataColumns.build(metas).to_bytes(),
            seg.rows,
        )
        sid = seg.segment_id
    assert keeldb.check(db_path).ok
    with keeldb.open(db_path, **OPTS) as db:
        col = db.get_collection("c")
        assert _filtered_ids(col) == sorted(str(i) for i in range(100) if i % 3 == 1)
    from keeldb.storage.format import segment_file_name

    cols = _coldir(db_path) / segment_file_name(sid, "cols")
    data = bytearray(cols.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cols.write_bytes(bytes(data))
    report = keeldb.check(db_path)
    assert not report.ok and any(cols.name in p for p in report.problems), report
