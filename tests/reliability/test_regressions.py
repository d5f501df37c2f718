"""Regression tests for bugs the reliability suite found (one test per bug, named after it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from reliability_util import SMALL

import keeldb


def _finishes(fn: Callable[[], object], timeout_s: float = 20.0) -> bool:
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(timeout_s)
    if errors:
        raise errors[0]
    return finished


def test_inline_maintenance_compact_and_close_do_not_deadlock(tmp_path: Path) -> None:
    """background=False: compact() and close() froze the memtable while holding the
    maintenance lock, and the inline wake-up then waited for that same lock forever."""
    db = keeldb.open(tmp_path / "db", **SMALL)
    col = db.create_collection("c", 8, "l2")
    col.upsert(["a", "b"], np.ones((2, 8), np.float32))
    assert _finishes(col.compact), "compact() deadlocked"
    col.upsert(["c"], np.ones((1, 8), np.float32))
    assert _finishes(db.close), "close() deadlocked"
    with keeldb.open(tmp_path / "db", **SMALL) as db2:
        assert db2.get_collection("c").count() == 3


def test_leftover_files_of_a_cut_seal_are_removed_on_open(tmp_path: Path) -> None:
    """A seal cut short leaves segment files numbered at or above the manifest's
    next_segment_id. Open kept them ("being written"), so the next seal reused the number
    and failed with EEXIST, and close() failed with it."""
    from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

    root = tmp_path / "root"
    root.mkdir()
    with keeldb.open(root / "db", **SMALL) as db:
        db.create_collection("c", 8, "l2").upsert(["a"], np.ones((1, 8), np.float32))
    fs = FaultyFileSystem(str(root))
    db = keeldb.open(root / "db", fs=fs, **SMALL)
    col = db.get_collection("c")
    # creates: the new WAL file, seg.vec, then seg.ids: cut there, seg.vec is complete
    fs.arm(Fault(nth=3, ops=frozenset({"create"}), mode="process"))
    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    try:
        col.upsert([f"r{i}" for i in range(60)], vectors)  # 60 > memtable_rows: seals
    except SimulatedCrash:
        FaultyFileSystem.abandon(db)
    else:
        raise AssertionError("the fault did not fire")
    with keeldb.open(root / "db", **SMALL) as db2:
        col2 = db2.get_collection("c")
        col2.upsert([f"s{i}" for i in range(60)], vectors)  # seals again
        col2.compact()
    with keeldb.open(root / "db", **SMALL) as db3:
        assert db3.get_collection("c").count() == 121


def test_power_cut_while_freezing_the_memtable_leaves_no_stale_wal(tmp_path: Path) -> None:
    """A write that fills the memtable created the next WAL file before fsyncing the old
    one. A power cut between the two lost the (unacknowledged) record from the old file
    but kept the new empty file, numbered past it: after recovery the next freeze tried to
    create that name again (EEXIST), and a torn tail in the old file refused to open."""
    import os

    from reliability_util import Model, Workload, crash_loop, write_batch

    base = tmp_path / "base"
    base.mkdir()
    model = Model()
    wl = Workload(1)
    with keeldb.open(base / "db", **SMALL) as db:
        col = db.create_collection("c", 8, "l2")
        b = [("upsert", wl.upsert_args(20))]
        write_batch(col, b)
        model.apply(b)
    batch = [("upsert", wl.upsert_args(60))]  # > memtable_rows: freezes the memtable

    def op(db: keeldb.Database, col: keeldb.Collection, ack: Callable[[], None]) -> None:
        write_batch(col, batch)
        ack()

    crash_loop(str(base), os.fspath(tmp_path / "work"), model, [batch], op, modes=("power", "torn"))


def test_close_after_replay_without_new_writes(tmp_path: Path) -> None:
    """Opening a collection whose WAL had records to replay started an empty WAL file
    numbered last_seq + 1; closing (or compacting) without a new write froze the replayed
    memtable and tried to create that same file again: EEXIST, and close() failed."""
    from keeldb.storage.faults import FaultyFileSystem

    db = keeldb.open(tmp_path / "db", **SMALL)
    db.create_collection("c", 8, "l2").upsert(["a", "b"], np.ones((2, 8), np.float32))
    FaultyFileSystem.abandon(db)  # a crash: the records stay in the WAL only
    with keeldb.open(tmp_path / "db", **SMALL) as db2:
        assert db2.get_collection("c").count() == 2
    db3 = keeldb.open(tmp_path / "db", **SMALL)
    FaultyFileSystem.abandon(db3)
    with keeldb.open(tmp_path / "db", **SMALL) as db4:
        db4.get_collection("c").compact()
    with keeldb.open(tmp_path / "db", **SMALL) as db5:
        assert db5.get_collection("c").count() == 2


def test_new_database_directories_are_made_durable(tmp_path: Path) -> None:
    """keeldb.open created the database directory and its workspaces/ directory without
    fsyncing their parents: a power cut after the first acknowledged write could lose the
    whole database (the collection directory hung off an unsynced directory entry)."""
    from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

    fs = FaultyFileSystem(str(tmp_path))
    db = keeldb.open(tmp_path / "db", fs=fs, **SMALL)
    db.create_collection("c", 8, "l2").upsert(["a"], np.ones((1, 8), np.float32))
    fs.arm(Fault(nth=1, mode="power"))  # power cut at the next I/O call (in close)
    try:
        db.close()
    except SimulatedCrash:
        FaultyFileSystem.abandon(db)
    else:
        raise AssertionError("the fault did not fire")
    with keeldb.open(tmp_path / "db", **SMALL) as db2:
        assert db2.get_collection("c").count() == 1


FLAT = dict(SMALL, hnsw_min_rows=1000)  # sealed segments stay flat and separate


def _sealed_base(path: Path, **options: object) -> keeldb.Database:
    """A database whose collection "c" has 60 rows sealed in a segment, r0 = {"v": 0}."""
    db = keeldb.open(path, **dict(SMALL, **options))
    col = db.create_collection("c", 8, "l2")
    vectors = np.random.default_rng(0).normal(size=(60, 8)).astype(np.float32)
    col.upsert([f"r{i}" for i in range(60)], vectors, [{"v": i} for i in range(60)])
    assert any(s.kind == "flat" for s in col.stats().segments)
    return db


def test_replay_keeps_metadata_of_an_upsert_whose_tombstone_was_persisted(tmp_path: Path) -> None:
    """An upsert with metadata None keeps the old record's metadata, looked up when the
    WAL record is applied. A maintenance commit (merge, vacuum, checkpoint) persists the
    segment's tombstones, including the old row's, while the WAL record is still past
    the checkpoint; replay then found no live old row and stored {} (found by the kill -9
    soak)."""
    from keeldb.storage.faults import FaultyFileSystem

    db = _sealed_base(tmp_path / "db")
    col = db.get_collection("c")
    col.upsert(["r0"], np.ones((1, 8), np.float32))  # keeps {"v": 0}
    col.versions.checkpoint()  # what a background merge/vacuum commit does at any time
    FaultyFileSystem.abandon(db)  # crash: r0's new version is only in the WAL
    with keeldb.open(tmp_path / "db", **SMALL) as db2:
        rec = db2.get_collection("c").get(["r0"])[0]
        assert rec is not None
        assert np.array_equal(rec.vector, np.ones(8, np.float32))
        assert rec.metadata == {"v": 0}


def test_power_cut_never_keeps_a_tombstone_without_its_write(tmp_path: Path) -> None:
    """Writes kill the old row in memory before their WAL record is fsynced (fsync mode:
    the fsync happens after the lock; none mode: at flush). A maintenance commit in
    between persisted that tombstone; a power cut then lost the WAL record, so the old,
    durable version of the record vanished with no new one in its place."""
    from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

    root = tmp_path / "root"
    root.mkdir()
    _sealed_base(root / "db").close()
    fs = FaultyFileSystem(str(root))
    db = keeldb.open(root / "db", fs=fs, durability="none", **SMALL)
    col = db.get_collection("c")
    col.upsert(["r0"], np.ones((1, 8), np.float32), [{"v": "new"}])  # not durable yet
    col.versions.checkpoint()  # what a background merge/vacuum commit does at any time
    fs.arm(Fault(nth=1, mode="power"))
    try:
        db.close()
    except SimulatedCrash:
        FaultyFileSystem.abandon(db)
    with keeldb.open(root / "db", **SMALL) as db2:
        rec = db2.get_collection("c").get(["r0"])[0]
        assert rec is not None, "the durable old version of r0 was lost"
        assert rec.metadata in ({"v": 0}, {"v": "new"})


def test_failed_cleanup_after_a_commit_does_not_undo_the_commit(tmp_path: Path) -> None:
    """A merge committed its manifest, then removing the merged segments' files failed
    (EIO): the error skipped the in-memory swap, so the next manifest named the old
    segments again, whose files were half removed: the collection could not be opened."""
    from keeldb.storage.faults import Fault, FaultyFileSystem

    root = tmp_path / "root"
    root.mkdir()
    db = keeldb.open(root / "db", **FLAT)
    col = db.create_collection("c", 8, "l2")
    rng = np.random.default_rng(0)
    for b in range(3):  # three sealed flat segments
        col.upsert([f"b{b}-{i}" for i in range(50)], rng.normal(size=(50, 8)).astype(np.float32))
    db.close()
    fs = FaultyFileSystem(str(root))
    db = keeldb.open(root / "db", fs=fs, **FLAT)
    # remove #1 is the manifest temp file (atomic_write), #2 seg-1.vec, #3 seg-1.ids
    fs.arm(Fault(nth=3, action="eio", ops=frozenset({"remove"})))
    try:
        db.get_collection("c").compact()  # merges the three flat segments into one
    except keeldb.StorageError:
        pass
    assert fs.faults_fired == 1
    fs.arm(None)
    db.close()
    with keeldb.open(root / "db", **FLAT) as db2:
        assert db2.get_collection("c").count() == 150
    assert keeldb.check(root / "db").ok


def test_open_error_is_not_masked_by_closing_loaded_segments(tmp_path: Path) -> None:
    """When a later segment failed to load, closing the ones already loaded raised
    BufferError (numpy views of the id map still exported), hiding the CorruptionError."""
    db = keeldb.open(tmp_path / "db", **FLAT)
    col = db.create_collection("c", 8, "l2")
    rng = np.random.default_rng(0)
    for b in range(2):
        col.upsert([f"b{b}-{i}" for i in range(50)], rng.normal(size=(50, 8)).astype(np.float32))
    db.close()
    ids2 = tmp_path / "db" / "workspaces" / "default" / "c" / "seg-00000002.ids"
    ids2.write_bytes(ids2.read_bytes()[:-3])
    with pytest.raises(keeldb.CorruptionError, match="seg-00000002.ids"):
        keeldb.open(tmp_path / "db", **FLAT).get_collection("c")
