"""``keeldb serve PATH --ray --shards N``: the HTTP server fronts a sharded database."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.cli import main
from keeldb.server.testing import ServerProcess


def test_serve_ray_fronts_a_sharded_database(tmp_path: Path) -> None:
    ray_tmp = tempfile.mkdtemp(prefix="kdbray-", dir="/tmp")
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    ids = [f"d{i:03d}" for i in range(300)]
    meta = [{"even": i % 2 == 0} for i in range(300)]
    try:
        server = ServerProcess(
            tmp_path / "db",
            args=["--ray", "--shards", "2"],
            env={"RAY_TMPDIR": ray_tmp},
            startup_timeout_s=240,
            stop_timeout_s=60,
        )
        with server:
            client = keeldb.Client(server.url)
            col = client.create_collection("c", dim=8, metric="l2")
            col.upsert(ids, vectors, meta)
            assert col.count() == 300
            assert col.count({"even": True}) == 150
            hits = col.search(vectors[5], 3, exact=True)
            assert hits[0].id == "d005" and hits[0].distance == 0.0
            page = col.scan(limit=250)
            assert len(page.records) == 250 and page.next_cursor == "d249"
            assert col.delete(ids=["d000", "d001", "nope"]) == 2
            with pytest.raises(keeldb.DimensionMismatchError):
                col.upsert(["x"], np.ones((1, 3)), None)
            assert client.list_collections()[0].count == 298
            # Documents and text search are not sharded yet: a clear 400, never a 500.
            assert col.search(vectors[5], 1, with_documents=False)[0].document is None
            for call in (
                lambda: col.upsert(["t"], vectors[:1], documents=["text"]),
                lambda: col.text_search("text"),
                lambda: col.hybrid_search("text", vector=vectors[0]),
            ):
                with pytest.raises(keeldb.InvalidArgumentError, match="sharded"):
                    call()
            assert col.get(["t"]) == [None]
            client.close()
        assert server.process is not None and server.process.returncode == 0
        # Each shard is an ordinary KeelDB directory holding its part.
        total = 0
        for shard in ("shard-0000", "shard-0001"):
            with keeldb.open(tmp_path / "db" / shard) as db:
                total += db.get_collection("c").count()
        assert total == 298
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_serve_ray_options_need_each_other(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tmp_path), "--shards", "2"]) == 2
    assert "--shards and --ray-address need --ray" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--ray"]) == 2
    assert "--ray needs --shards" in capsys.readouterr().err
