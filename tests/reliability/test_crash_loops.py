"""Crash loops (after SQLite's crash tests and LevelDB's fault-injecting Env).

For N = 1, 2, ...: cut power (or kill the process, or tear the last write) at the N-th
mutating I/O call of an operation, until the operation completes untouched. After each cut
the database is reopened on the real file system and checked against the model: every
acknowledged write present and exact, the batch in flight entirely present or entirely
absent, no error on open, ``keeldb check`` clean, and the collection writable again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_util import DIM, SMALL, Model, Workload, crash_loop, write_batch

import keeldb

ALL_MODES = ("power", "torn", "process")


def _base(
    fast_tmp: Path, metric: str = "l2", batches: int = 4, seed: int = 0, **extra: Any
) -> tuple[str, Model]:
    """A database with collection ``c`` holding a few acknowledged batches."""
    base = str(fast_tmp / "base")
    os.makedirs(base)
    model = Model(metric)
    wl = Workload(seed)
    with keeldb.open(os.path.join(base, "db"), **dict(SMALL, **extra)) as db:
        col = db.create_collection("c", DIM, metric)
        for _ in range(batches):
            b = wl.batch()
            write_batch(col, b)
            model.apply(b)
    return base, model


def _writer(batches: list[list[tuple[str, Any]]]) -> Any:
    def op(db: keeldb.Database, col: keeldb.Collection, ack: Any) -> None:
        for b in batches:
            write_batch(col, b)
            ack()

    return op


def _report(name: str, stats: Any) -> None:
    outcomes = stats.outcomes
    print(f"\n[crash-loop] {name}: runs={stats.runs} crashes={stats.crashes} outcomes={outcomes}")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_crash_loop_upsert_delete_transaction(fast_tmp: Path, metric: str) -> None:
    base, model = _base(fast_tmp, metric)
    wl = Workload(7)
    batches = [wl.batch() for _ in range(3)]
    stats = crash_loop(base, str(fast_tmp / "work"), model, batches, _writer(batches))
    _report(f"writes/{metric}", stats)
    assert stats.crashes >= 3 * 6


def test_crash_loop_write_that_seals_the_memtable(fast_tmp: Path) -> None:
    base, model = _base(fast_tmp, batches=2)
    wl = Workload(11)
    args = wl.upsert_args(60)  # > memtable_rows: freezes the memtable, seals it inline
    batches = [[("upsert", args)], wl.batch()]
    stats = crash_loop(base, str(fast_tmp / "work"), model, batches, _writer(batches))
    _report("seal", stats)
    assert stats.calls_max > 15  # the seal's file writes were cut too


def _compact(db: keeldb.Database, col: keeldb.Collection, ack: Any) -> None:
    col.compact()


def test_crash_loop_compact_builds_hnsw_and_vacuums(fast_tmp: Path) -> None:
    # ~6 batches of writes (some sealed flat segments), deletes: compact merges them into
    # an HNSW segment and vacuums the deleted rows.
    base, model = _base(fast_tmp, batches=14, seed=3)
    stats = crash_loop(base, str(fast_tmp / "work"), model, [], _compact)
    _report("compact", stats)
    assert stats.calls_max > 30


def test_crash_loop_merge_extends_an_hnsw_segment(fast_tmp: Path) -> None:
    base = str(fast_tmp / "base")
    os.makedirs(base)
    model = Model()
    wl = Workload(5, id_space=2000)
    with keeldb.open(os.path.join(base, "db"), **SMALL) as db:
        col = db.create_collection("c", DIM, "l2")
        for _ in range(12):
            b = [("upsert", wl.upsert_args(20))]
            write_batch(col, b)
            model.apply(b)
        col.compact()  # an HNSW segment
        for _ in range(3):
            b = wl.batch()
            write_batch(col, b)
            model.apply(b)
    with keeldb.open(os.path.join(base, "db"), **SMALL) as db:
        kinds = [s.kind for s in db.get_collection("c").stats().segments]
    assert "hnsw" in kinds and "memtable" in kinds, kinds
    stats = crash_loop(base, str(fast_tmp / "work"), model, [], _compact, modes=("power", "torn"))
    _report("merge-extend", stats)


def test_crash_loop_recovery_itself(fast_tmp: Path) -> None:
    """Cut power during open: WAL replay, torn-tail truncation, leftover removal, and the
    seal of a replayed full memtable must all be restartable."""
    base = str(fast_tmp / "base")
    os.makedirs(base)
    model = Model()
    wl = Workload(9)
    db = keeldb.open(os.path.join(base, "db"), **SMALL)
    col = db.create_collection("c", DIM, "l2")
    for _ in range(6):
        b = wl.batch()
        write_batch(col, b)
        model.apply(b)
    # Leave the WAL un-checkpointed, as after a crash: drop the database without close.
    from keeldb.storage.faults import FaultyFileSystem

    FaultyFileSystem.abandon(db)
    del db, col

    def nothing(db: keeldb.Database, col: keeldb.Collection, ack: Any) -> None:
        pass

    stats = crash_loop(base, str(fast_tmp / "work"), model, [], nothing, before_open=True)
    _report("recovery", stats)
    assert stats.crashes > 0


def test_crash_loop_create_and_drop_collection(fast_tmp: Path) -> None:
    base, model = _base(fast_tmp, batches=2)
    vectors = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM)

    def create_write_drop(db: keeldb.Database, col: keeldb.Collection, ack: Any) -> None:
        other = db.create_collection("other", DIM, "l2")
        other.upsert(["x", "y", "z"], vectors)
        db.drop_collection("other")

    stats = crash_loop(base, str(fast_tmp / "work"), model, [], create_write_drop)
    _report("create+drop", stats)
    # After any cut "other" is absent, or present and exact (its write was acknowledged).
    work = str(fast_tmp / "work2")
    import shutil

    from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

    for n in range(1, stats.calls_max + 1):
        if os.path.exists(work):
            shutil.rmtree(work)
        shutil.copytree(base, work)
        fs = FaultyFileSystem(work)
        db = keeldb.open(os.path.join(work, "db"), fs=fs, **SMALL)
        fs.arm(Fault(nth=n))
        created = written = False
        try:
            other = db.create_collection("other", DIM, "l2")
            created = True
            other.upsert(["x", "y", "z"], vectors)
            written = True
            db.close()
        except SimulatedCrash:
            FaultyFileSystem.abandon(db)
        with keeldb.open(os.path.join(work, "db"), **SMALL) as db2:
            names = [c.name for c in db2.list_collections()]
            if created:
                assert "other" in names, f"N={n}: an acknowledged create_collection was lost"
            if "other" in names:
                got = db2.get_collection("other").get(["x", "y", "z"])
                if written:
                    assert all(r is not None for r in got)
                    assert np.array_equal(np.stack([r.vector for r in got]), vectors)  # type: ignore[union-attr]
                else:
                    assert all(r is None for r in got) or all(r is not None for r in got)


@pytest.mark.slow
# Up to 5,000 injected crashes with a reopen and full check after each: ~3-5 min per seed
# on an idle 2-core machine, over the default 300 s hang guard when the machine is busy.
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", range(8))
def test_crash_loop_long_random_workloads(fast_tmp: Path, seed: int) -> None:
    base, model = _base(fast_tmp, batches=10, seed=100 + seed)
    wl = Workload(200 + seed)
    batches = [wl.batch() for _ in range(25)]

    def op(db: keeldb.Database, col: keeldb.Collection, ack: Any) -> None:
        for i, b in enumerate(batches):
            write_batch(col, b)
            ack()
            if i % 9 == 8:
                col.compact()

    stats = crash_loop(
        base, str(fast_tmp / "work"), model, batches, op, modes=ALL_MODES, max_calls=5000
    )
    _report(f"long/{seed}", stats)


def test_crash_loop_brand_new_database(fast_tmp: Path) -> None:
    """Cut power anywhere from creating a database directory to the first acknowledged
    write: afterwards the write is there (if acknowledged) and the database opens."""
    vectors = np.arange(2 * DIM, dtype=np.float32).reshape(2, DIM)
    from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

    work = fast_tmp / "work"
    runs = 0
    for mode in ("power", "torn"):
        n = 0
        while True:
            n += 1
            if work.exists():
                shutil.rmtree(work)
            work.mkdir()
            fs = FaultyFileSystem(str(work))
            fs.arm(Fault(nth=n, mode=mode, seed=n))
            acked = False
            db = None
            try:
                db = keeldb.open(work / "db", fs=fs, **SMALL)
                db.create_collection("c", DIM, "l2").upsert(["a", "b"], vectors)
                acked = True
                db.close()
                done = True
            except SimulatedCrash:
                done = False
                if db is not None:
                    FaultyFileSystem.abandon(db)
            runs += 1
            with keeldb.open(work / "db", **SMALL) as db2:
                names = [c.name for c in db2.list_collections()]
                if acked:
                    assert names == ["c"], f"mode={mode} N={n}: acknowledged collection lost"
                if names:
                    got = db2.get_collection("c").get(["a", "b"])
                    if acked:
                        assert np.array_equal(np.stack([r.vector for r in got]), vectors)  # type: ignore[union-attr]
            if done:
                break
    print(f"\n[crash-loop] new database: runs={runs}")
