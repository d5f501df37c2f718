"""A real ``keeldb serve`` process on 127.0.0.1: network, signals, restarts, locking."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

import keeldb
from keeldb.protocol import wire
from keeldb.server.testing import ServerProcess

KEY = "live-test-key-1"
AUTH = {"Authorization": f"Bearer {KEY}"}
COL = "/v1/workspaces/default/collections"
# httpx's default (5 s) is short for a first request or an fsync on a loaded machine.
TIMEOUT_S = 30


def _in_flight(url: str) -> int:
    text = httpx.get(f"{url}/metrics", headers=AUTH, timeout=TIMEOUT_S).text
    line = next(x for x in text.splitlines() if x.startswith("keeldb_http_requests_in_flight "))
    return int(float(line.split()[1]))


def test_serves_over_tcp_with_auth_and_limits(tmp_path: Path) -> None:
    with ServerProcess(
        tmp_path / "db", args=["--api-key", KEY, "--max-body-bytes", "100000"]
    ) as srv:
        with httpx.Client(base_url=srv.url, timeout=TIMEOUT_S) as http:
            assert http.get("/healthz").json()["status"] == "ok"
            assert http.get(f"{COL}").status_code == 401
            assert http.put(f"{COL}/c", json={"dim": 2}, headers=AUTH).status_code == 200
            big = b'{"ids": [' + b'"x",' * 50_000 + b'"y"]}'
            resp = http.post(
                f"{COL}/c/upsert", content=big, headers={**AUTH, "content-type": "application/json"}
            )
            assert resp.status_code == 413
            assert resp.json()["error"] == "payload_too_large"
            assert http.get("/openapi.json").status_code == 401
            assert "openapi" in http.get("/openapi.json", headers=AUTH).json()
            assert http.get("/docs", headers=AUTH).status_code == 200
    assert "serving" in srv.log


def test_sigterm_finishes_in_flight_requests_then_flushes_and_closes(tmp_path: Path) -> None:
    n, dim = 10_000, 256
    vectors = np.random.default_rng(1).normal(size=(n, dim)).astype(np.float32)
    body = {"ids": [f"v{i}" for i in range(n)], "vectors": wire.encode_array(vectors)}
    result: dict[str, object] = {}
    srv = ServerProcess(tmp_path / "db", args=["--durability", "none"]).start()
    try:
        httpx.put(f"{srv.url}{COL}/c", json={"dim": dim}, timeout=TIMEOUT_S).raise_for_status()

        def slow_upsert() -> None:
            resp = httpx.post(f"{srv.url}{COL}/c/upsert", json=body, timeout=60)
            result["status"] = resp.status_code

        worker = threading.Thread(target=slow_upsert)
        worker.start()
        deadline = time.monotonic() + 10
        while _in_flight(srv.url) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert srv.stop() == 0  # SIGTERM while the upsert is in flight
        worker.join(30)
    finally:
        srv.kill()
    assert result.get("status") == 200, srv.log
    # durability "none": only the shutdown flush made these durable.
    with keeldb.open(tmp_path / "db") as db:
        assert db.get_collection("c").count() == n
    assert "closing the database" in srv.log


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "db") as srv:
        httpx.put(f"{srv.url}{COL}/c", json={"dim": 3}, timeout=TIMEOUT_S).raise_for_status()
        for i in range(20):
            httpx.post(
                f"{srv.url}{COL}/c/upsert",
                json={"ids": [f"k{i}"], "vectors": [[1, i, 0]]},
                timeout=TIMEOUT_S,
            ).raise_for_status()
        srv.kill()
    with ServerProcess(tmp_path / "db") as srv2:
        count = httpx.post(f"{srv2.url}{COL}/c/count", timeout=TIMEOUT_S).json()
    assert count == {"count": 20}


def test_second_server_on_the_same_database_is_refused(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "db"):
        second = ServerProcess(tmp_path / "db")
        with pytest.raises(RuntimeError, match="database_locked|locked"):
            second.start()


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "keeldb.cli", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_public_bind_without_keys_is_refused(tmp_path: Path) -> None:
    done = _serve(str(tmp_path / "db"), "--host", "0.0.0.0", "--port", "1")
    assert done.returncode == 2
    assert "--insecure" in done.stderr and "API keys" in done.stderr
    assert not (tmp_path / "db").exists()  # refused before opening anything


def test_bad_keys_file_is_reported(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    keys.write_text('[{"key": "tiny"}]')
    done = _serve(str(tmp_path / "db"), "--keys-file", str(keys))
    assert done.returncode == 1 and "keys file" in done.stderr
