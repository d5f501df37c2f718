"""Losing a node: the shard pinned to it (custom resource ``keeldb_shard_1``) is
unavailable — a typed error naming it, or partial results when asked — and serves again
with all its data once a node offering the same resource comes back."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from keeldb.ray import PartialHits, ShardedDatabase, ShardUnavailableError
from keeldb.ray.routing import shard_of
from keeldb.ray.shardset import loopback_only


def _node_args(temp_dir: str, shard: int) -> dict[str, object]:
    return {
        "num_cpus": 0 if shard else 1,
        "resources": {f"keeldb_shard_{shard}": 1},
        "node_ip_address": "127.0.0.1",
        "include_dashboard": False,
        "temp_dir": temp_dir,
    }


def test_lost_node_comes_back_with_its_shard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loopback_only()
    temp_dir = tempfile.mkdtemp(prefix="kdbray-", dir="/tmp")
    # Cluster writes its address file under Ray's default temporary directory.
    monkeypatch.setenv("RAY_TMPDIR", temp_dir)
    os.makedirs(os.path.join(temp_dir, "ray"))
    cluster = Cluster(initialize_head=True, head_node_args=_node_args(temp_dir, 0))
    try:
        node = cluster.add_node(**_node_args(temp_dir, 1))
        ray.init(address=cluster.address, log_to_driver=False)
        sdb = ShardedDatabase.open(tmp_path / "db", shards=2, unavailable_timeout_s=3)
        try:
            shards = sdb.shards()
            assert shards[1].node == node.node_id
            assert shards[0].node != node.node_id
            col = sdb.create_collection("c", dim=8, metric="l2")
            rng = np.random.default_rng(5)
            ids = [f"r{i:04d}" for i in range(400)]
            vectors = rng.standard_normal((400, 8)).astype(np.float32)
            col.upsert(ids, vectors, [{"i": i} for i in range(400)])
            query = vectors[0]
            before = col.search(query, 20, exact=True)
            everything = col.search(query, 400, exact=True)
            on_shard_0 = [h for h in everything if shard_of([h.id], 2)[0] == 0]
            rows_on_1 = sdb.shards()[1].rows
            assert rows_on_1 == len(everything) - len(on_shard_0)

            cluster.remove_node(node)
            with pytest.raises(ShardUnavailableError, match="shard 1") as info:
                col.search(query, 20, exact=True)
            assert info.value.shard == 1 and "keeldb_shard_1" in str(info.value)
            partial = col.search(query, 20, exact=True, allow_partial=True)
            assert isinstance(partial, PartialHits) and partial.missing_shards == (1,)
            assert [(h.id, h.distance) for h in partial] == [
                (h.id, h.distance) for h in on_shard_0[:20]
            ]

            back = cluster.add_node(**_node_args(temp_dir, 1))
            deadline = time.monotonic() + 120
            while True:
                info_1 = sdb.shards()[1]
                if info_1.alive or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert info_1.alive and info_1.node == back.node_id
            assert info_1.rows == rows_on_1
            assert col.count() == 400
            assert [(h.id, h.distance) for h in col.search(query, 20, exact=True)] == [
                (h.id, h.distance) for h in before
            ]
            record = col.get([ids[7]])[0]
            assert record is not None and np.array_equal(record.vector, vectors[7])
        finally:
            sdb.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
