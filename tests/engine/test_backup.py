"""Online backup and restore: consistency under concurrent writers, refusal of partial or
damaged backups, and a kill -9 in the middle of a backup."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.errors import AlreadyExistsError, CorruptionError, NotFoundError

SMALL = {"memtable_rows": 200, "hnsw_min_rows": 300}


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _contents(db: keeldb.Database) -> dict[str, dict[str, tuple[list[float], object]]]:
    out: dict[str, dict[str, tuple[list[float], object]]] = {}
    for info in db.list_collections():
        col = db.get_collection(info.name, workspace=info.workspace)
        rows: dict[str, tuple[list[float], object]] = {}
        cursor = None
        while True:
            page = col.scan(limit=1000, cursor=cursor)
            for rec in page.records:
                rows[rec.id] = (np.round(rec.vector, 5).tolist(), rec.metadata)
            cursor = page.next_cursor
            if cursor is None:
                break
        out[f"{info.workspace}/{info.name}"] = rows
    return out


def _populate(db: keeldb.Database) -> None:
    a = db.create_collection("a", dim=8, metric="l2")
    vecs = _vectors(700)
    a.upsert([f"a{i}" for i in range(700)], vecs, [{"i": i} for i in range(700)])
    a.compact()  # an HNSW segment
    a.delete([f"a{i}" for i in range(0, 700, 7)])  # tombstones
    a.upsert(["fresh"], _vectors(1, seed=5), [{"in": "memtable"}])  # only in the WAL
    b = db.create_collection("b", dim=8, workspace="other")
    b.upsert(["x", "y"], _vectors(2, seed=3), [{"k": "x"}, None])


def test_backup_and_restore_round_trip(tmp_path: Path) -> None:
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        _populate(db)
        expected = _contents(db)
        report = db.backup(tmp_path / "bk")
        assert sorted(report.collections) == ["default/a", "other/b"]
        assert report.files > 0 and report.bytes > 0
        db.get_collection("a").upsert(["after"], _vectors(1, seed=9))  # not in the backup
    restored = keeldb.restore(tmp_path / "bk", tmp_path / "restored")
    assert restored.path == str(tmp_path / "restored")
    assert keeldb.check(tmp_path / "restored").ok
    with keeldb.open(tmp_path / "restored", **SMALL) as db2:
        assert _contents(db2) == expected
        hits = db2.get_collection("a").search(_vectors(1, seed=5)[0], k=1)
        assert hits[0].id == "fresh"


def test_backup_refuses_a_non_empty_destination(tmp_path: Path) -> None:
    (tmp_path / "bk").mkdir()
    (tmp_path / "bk" / "mine.txt").write_text("keep me")
    with keeldb.open(tmp_path / "db") as db:
        db.create_collection("c", dim=4)
        with pytest.raises(AlreadyExistsError):
            db.backup(tmp_path / "bk")
    assert (tmp_path / "bk" / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("hard_links", [False, True])
def test_restore_refuses_incomplete_damaged_or_existing(tmp_path: Path, hard_links: bool) -> None:
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        _populate(db)
        db.backup(tmp_path / "bk", hard_links=hard_links)
    (tmp_path / "taken").mkdir()
    with pytest.raises(AlreadyExistsError):
        keeldb.restore(tmp_path / "bk", tmp_path / "taken")
    # Damage one segment file of the backup: restore verifies every checksum.
    seg = next((tmp_path / "bk").rglob("seg-*.meta"))
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    os.unlink(seg)  # maybe a hard link to the source's file: replace it, never write through
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptionError):
        keeldb.restore(tmp_path / "bk", tmp_path / "r1")
    assert not (tmp_path / "r1").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".keeldb-restoring")]
    # The source was never touched by the damage (hard links are replaced, not written).
    assert keeldb.check(tmp_path / "db").ok
    # Without its BACKUP file a directory is not a (complete) backup.
    os.unlink(tmp_path / "bk" / "BACKUP")
    with pytest.raises(NotFoundError):
        keeldb.restore(tmp_path / "bk", tmp_path / "r2")


def test_backup_while_four_threads_write_holds_each_writers_acknowledged_prefix(
    tmp_path: Path,
) -> None:
    db = keeldb.open(tmp_path / "db", durability="flush", **SMALL)
    col = db.create_collection("c", dim=8)
    acked = [0, 0, 0, 0]
    stop = threading.Event()
    vec = _vectors(1, seed=1)

    def writer(t: int) -> None:
        i = 0
        while not stop.is_set() and i < 5000:
            col.upsert([f"w{t}-{i:05d}"], vec, [{"t": t, "i": i}])
            i += 1
            acked[t] = i

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 60  # every writer has something acknowledged
    while min(acked) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    before = list(acked)  # acknowledged before backup() is called
    db.backup(tmp_path / "bk")
    stop.set()
    for th in threads:
        th.join()
    db.close()
    keeldb.restore(tmp_path / "bk", tmp_path / "restored")
    with keeldb.open(tmp_path / "restored", **SMALL) as db2:
        ids = set(_contents(db2)["default/c"])
    for t in range(4):
        mine = sorted(int(i.split("-")[1]) for i in ids if i.startswith(f"w{t}-"))
        assert mine == list(range(len(mine))), f"writer {t}: not a prefix"
        assert len(mine) >= before[t], f"writer {t}: lost acknowledged writes"
    assert sum(before) > 0


_SLOW_BACKUP = textwrap.dedent(
    """
    import sys, time
    import keeldb
    from keeldb.engine import backup as bk

    real = bk._copy_file
    count = [0]

    def slow(*args, **kwargs):
        real(*args, **kwargs)
        count[0] += 1
        if count[0] == 3:
            open(sys.argv[3], "w").close()  # tell the test: mid-backup now
            time.sleep(60)

    bk._copy_file = slow
    with keeldb.open(sys.argv[1], memtable_rows=200, hnsw_min_rows=300) as db:
        db.backup(sys.argv[2])
    """
)


def test_kill_9_during_backup_leaves_source_intact_and_backup_refused(tmp_path: Path) -> None:
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        _populate(db)
        expected = _contents(db)
    sentinel = tmp_path / "mid-backup"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _SLOW_BACKUP,
            str(tmp_path / "db"),
            str(tmp_path / "bk"),
            str(sentinel),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not sentinel.exists():
            assert proc.poll() is None, "the backup process ended early"
            assert time.monotonic() < deadline, "the backup never started copying"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert keeldb.check(tmp_path / "db").ok
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        assert _contents(db) == expected
    with pytest.raises(NotFoundError):
        keeldb.restore(tmp_path / "bk", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()
