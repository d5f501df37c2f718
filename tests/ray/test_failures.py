"""Shard failures on a local Ray: kill -9 of a shard's process mid-ingest loses nothing
acknowledged; a shard that stays down raises a typed error naming it (or, asked for,
partial results marked as such); Ray listens on loopback only."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import ray

from keeldb.ray import PartialCount, PartialHits, ShardedDatabase, ShardUnavailableError

N_ROWS = 3000
BATCH = 50
DIM = 16


def _listening_sockets() -> dict[int, str]:
    """inode -> local address of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out: dict[int, str] = {}
    for name, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state != "0A":
                    continue
                addr_hex = local.split(":")[0]
                assert len(addr_hex) == width
                # /proc prints each 32-bit word in host (little-endian) order.
                raw = b"".join(bytes.fromhex(addr_hex[i : i + 8])[::-1] for i in range(0, width, 8))
                out[inode] = raw.hex()
    return out


def _is_loopback(raw_hex: str) -> bool:
    raw = bytes.fromhex(raw_hex)
    if len(raw) == 4:
        return raw[0] == 127
    if raw == bytes(15) + b"\x01":  # ::1
        return True
    return raw[:12] == bytes(10) + b"\xff\xff" and raw[12] == 127  # ::ffff:127.x.x.x


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def test_ray_listens_on_loopback_only(local_ray: str, tmp_path: Path) -> None:
    with ShardedDatabase.open(tmp_path / "db", shards=2) as sdb:
        sdb.create_collection("c", dim=4)
        # Ray's processes: this driver and everything it started (GCS, raylet, agents,
        # the shard workers).
        pids = _descendants(os.getpid())
        assert {s.pid for s in sdb.shards()} <= pids
        listening = _listening_sockets()
        ours = {
            ino: listening[ino] for pid in pids for ino in _socket_inodes(pid) if ino in listening
        }
        assert len(ours) >= 4, "found too few Ray listeners to judge"
        outside = {ino: addr for ino, addr in ours.items() if not _is_loopback(addr)}
        assert outside == {}
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"


def test_kill_9_during_ingest_loses_nothing_acknowledged(local_ray: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    ids = [f"row-{i:05d}" for i in range(N_ROWS)]
    vectors = rng.standard_normal((N_ROWS, DIM)).astype(np.float32)
    meta = [{"i": i, "tag": f"t{i % 7}"} for i in range(N_ROWS)]
    with ShardedDatabase.open(tmp_path / "db", shards=2, unavailable_timeout_s=60) as sdb:
        col = sdb.create_collection("c", dim=DIM, metric="l2")
        victim = sdb.shards()[1].pid
        assert victim is not None
        acked: list[int] = []
        killed_after: list[int] = []

        def killer() -> None:
            while len(acked) < N_ROWS // BATCH // 3:
                time.sleep(0.005)
            killed_after.append(len(acked))
            os.kill(victim, signal.SIGKILL)

        thread = threading.Thread(target=killer)
        thread.start()
        for start in range(0, N_ROWS, BATCH):
            part = slice(start, start + BATCH)
            col.upsert(ids[part], vectors[part], meta[part])
            acked.append(start)
        thread.join()
        # The kill landed while the ingest was running.
        assert killed_after and killed_after[0] < N_ROWS // BATCH
        after = sdb.shards()[1]
        assert after.alive and after.pid != victim
        records = col.get(ids)
        assert all(r is not None for r in records)
        got = np.stack([r.vector for r in records if r is not None])
        assert np.array_equal(got, vectors)
        assert [r.metadata for r in records if r is not None] == meta
        assert col.count() == N_ROWS
        # The whole ingest retried to completion: still every row once.
        for start in range(0, N_ROWS, 500):
            part = slice(start, start + 500)
            col.upsert(ids[part], vectors[part], meta[part])
        assert col.count() == N_ROWS
        scanned = [r.id for r in col.scan(None, 100_000).records]
        assert scanned == ids


def test_a_shard_that_stays_down_is_named(local_ray: str, tmp_path: Path) -> None:
    with ShardedDatabase.open(tmp_path / "db", shards=3, unavailable_timeout_s=2) as sdb:
        col = sdb.create_collection("c", dim=4, metric="l2")
        ids = [f"r{i}" for i in range(60)]
        col.upsert(ids, np.random.default_rng(1).standard_normal((60, 4)), None)
        per_shard = {s.index: s.rows for s in sdb.shards()}
        ray.kill(sdb.shard_set.actors[2], no_restart=True)
        with pytest.raises(ShardUnavailableError, match="shard 2") as info:
            col.search(np.ones(4), 5)
        assert info.value.shard == 2
        with pytest.raises(ShardUnavailableError, match="shard 2"):
            col.count()
        hits = col.search(np.ones(4), 100, allow_partial=True)
        assert isinstance(hits, PartialHits) and hits.missing_shards == (2,)
        assert len(hits) == per_shard[0] + per_shard[1]
        count = col.count(allow_partial=True)
        assert isinstance(count, PartialCount) and count.partial
        assert count == per_shard[0] + per_shard[1]
        batch = col.search_batch(np.ones((3, 4)), 2, allow_partial=True)
        assert batch.missing_shards == (2,) and len(batch) == 3
        down = [s for s in sdb.shards() if not s.alive]
        assert [s.index for s in down] == [2]
