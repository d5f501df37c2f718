"""Shard failures on a local Ray: kill -9 of a shard's process mid-ingest loses nothing
acknowledged; a shard that stays down raises a typed error naming it (or, asked for,
partial results marked as such)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import ray

from keeldb.ray import PartialCount, PartialHits, ShardedDatabase, ShardUnavailableError

N_ROWS = 3000
BATCH = 50
DIM = 16


@pytest.fixture(scope="module")
def sdb(local_ray: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShardedDatabase]:
    """A 2-shard database for the module (starting shard processes is slow); the last
    test stops one of its shards for good."""
    path = tmp_path_factory.mktemp("failures") / "db"
    with ShardedDatabase.open(path, shards=2, unavailable_timeout_s=60) as database:
        yield database


def test_kill_9_during_ingest_loses_nothing_acknowledged(sdb: ShardedDatabase) -> None:
    rng = np.random.default_rng(7)
    ids = [f"row-{i:05d}" for i in range(N_ROWS)]
    vectors = rng.standard_normal((N_ROWS, DIM)).astype(np.float32)
    meta = [{"i": i, "tag": f"t{i % 7}"} for i in range(N_ROWS)]
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


def test_a_shard_that_stays_down_is_named(sdb: ShardedDatabase) -> None:
    # For the rest of the module (its last test and the fixture's close).
    # 2 s: four liveness probes of the live shard fit in it on a busy machine.
    sdb.shard_set.unavailable_timeout_s = 2.0
    col = sdb.create_collection("down", dim=4, metric="l2")
    ids = [f"r{i}" for i in range(60)]
    col.upsert(ids, np.random.default_rng(1).standard_normal((60, 4)), None)
    per_shard = {i: col._on_one(i, "count") for i in range(2)}
    ray.kill(sdb.shard_set.actors[1], no_restart=True)
    with pytest.raises(ShardUnavailableError, match="shard 1") as info:
        col.search(np.ones(4), 5)
    assert info.value.shard == 1
    with pytest.raises(ShardUnavailableError, match="shard 1"):
        col.count()
    hits = col.search(np.ones(4), 100, allow_partial=True)
    assert isinstance(hits, PartialHits) and hits.missing_shards == (1,)
    assert len(hits) == per_shard[0]
    count = col.count(allow_partial=True)
    assert isinstance(count, PartialCount) and count.partial
    assert count == per_shard[0]
    batch = col.search_batch(np.ones((3, 4)), 2, allow_partial=True)
    assert batch.missing_shards == (1,) and len(batch) == 3
    down = [s for s in sdb.shards() if not s.alive]
    assert [s.index for s in down] == [1]
