"""Configurable limits and their defaults; CORS off unless origins are listed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from server_util import COL, assert_error, create

from keeldb.errors import InvalidArgumentError
from keeldb.server.config import ServerConfig
from keeldb.server.limits import filter_depth


def test_defaults_are_the_documented_ones() -> None:
    cfg = ServerConfig()
    assert cfg.max_body_bytes == 32 * 1024 * 1024
    assert (cfg.max_k, cfg.max_ef) == (1000, 4096)
    assert cfg.cors_origins == []
    with pytest.raises(InvalidArgumentError):
        ServerConfig(max_k=0)


def test_declared_body_over_the_limit_is_413(make_api: Any) -> None:
    api = make_api(max_body_bytes=1000)
    create(api, dim=4)
    body = json.dumps({"ids": ["a"] * 200, "vectors": [[1, 2, 3, 4]] * 200}).encode()
    resp = api.post(f"{COL}/c/upsert", content=body, headers={"content-type": "application/json"})
    assert_error(resp, 413, "payload_too_large")


def test_streamed_body_over_the_limit_is_413(make_api: Any) -> None:
    api = make_api(max_body_bytes=1000)
    create(api, dim=4)

    def chunks() -> Iterator[bytes]:
        yield b'{"ids": ['
        for _ in range(300):
            yield b'"aaaa",'
        yield b'"b"], "vectors": []}'

    resp = api.post(
        f"{COL}/c/upsert", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(resp, 413, "payload_too_large")
    # A small body on the same app still works.
    assert api.post(f"{COL}/c/count").status_code == 200


def test_default_body_limit_is_32_mib(api: Any) -> None:
    create(api, dim=4)
    resp = api.post(
        f"{COL}/c/upsert",
        content=b" " * (32 * 1024 * 1024 + 1),
        headers={"content-type": "application/json"},
    )
    assert_error(resp, 413, "payload_too_large")


def test_k_and_ef_limits(make_api: Any) -> None:
    api = make_api()
    create(api, dim=2, metric="l2")
    api.post(f"{COL}/c/upsert", json={"ids": ["a"], "vectors": [[1, 0]]}).raise_for_status()
    q = {"vector": [1, 0]}
    assert api.post(f"{COL}/c/search", json={**q, "k": 1000}).status_code == 200
    assert_error(api.post(f"{COL}/c/search", json={**q, "k": 1001}), 400, "invalid_argument")
    assert api.post(f"{COL}/c/search", json={**q, "ef": 4096}).status_code == 200
    assert_error(api.post(f"{COL}/c/search", json={**q, "ef": 4097}), 400, "invalid_argument")
    assert_error(
        api.post(f"{COL}/c/search_batch", json={"vectors": [[1, 0]], "k": 10**9}),
        400,
        "invalid_argument",
    )
    small = make_api(max_k=5, max_ef=10)
    assert_error(small.post(f"{COL}/c/search", json={**q, "k": 6}), 400, "invalid_argument")
    assert_error(small.post(f"{COL}/c/search", json={**q, "ef": 11}), 400, "invalid_argument")


def test_batch_limits(make_api: Any) -> None:
    api = make_api(max_batch=3, max_query_batch=2)
    create(api, dim=2, metric="l2")
    ok = {"ids": ["a", "b", "c"], "vectors": [[1, 0]] * 3}
    assert api.post(f"{COL}/c/upsert", json=ok).status_code == 200
    too_many = {"ids": ["a", "b", "c", "d"], "vectors": [[1, 0]] * 4}
    assert_error(api.post(f"{COL}/c/upsert", json=too_many), 413, "payload_too_large")
    assert_error(api.post(f"{COL}/c/get", json={"ids": ["a"] * 4}), 413, "payload_too_large")
    assert_error(api.post(f"{COL}/c/delete", json={"ids": ["a"] * 4}), 413, "payload_too_large")
    assert_error(api.post(f"{COL}/c/scan", json={"limit": 4}), 413, "payload_too_large")
    assert api.post(f"{COL}/c/search_batch", json={"vectors": [[1, 0]] * 2}).status_code == 200
    assert_error(
        api.post(f"{COL}/c/search_batch", json={"vectors": [[1, 0]] * 3}), 413, "payload_too_large"
    )
    assert api.post(f"{COL}/c/count").json() == {"count": 3}


def test_filter_depth_limit(make_api: Any) -> None:
    api = make_api(max_filter_depth=4)
    create(api, dim=2)
    shallow = {"$and": [{"year": {"$gte": 1}}]}  # object > list > object > object: 4
    assert filter_depth(shallow) == 4
    assert api.post(f"{COL}/c/count", json={"filter": shallow}).status_code == 200
    deep: dict[str, Any] = {"year": 1}
    for _ in range(4):
        deep = {"$and": [deep]}
    for action, extra in [
        ("count", {}),
        ("search", {"vector": [1, 0]}),
        ("scan", {}),
        ("delete", {}),
        ("search_batch", {"vectors": [[1, 0]]}),
    ]:
        resp = api.post(f"{COL}/c/{action}", json={"filter": deep, **extra})
        assert_error(resp, 400, "invalid_argument")
    # Pathologically deep JSON is refused as bad input too, not a crash.
    very_deep = '{"filter": ' + '{"$and": [' * 5000 + "{}" + "]}" * 5000 + "}"
    resp = api.post(
        f"{COL}/c/count", content=very_deep.encode(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400


def test_cors_is_off_by_default_and_on_for_listed_origins(make_api: Any) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    off = make_api()
    resp = off.get("/healthz", headers={"Origin": "https://app.example"})
    assert "access-control-allow-origin" not in resp.headers
    on = make_api(cors_origins=["https://app.example"])
    resp = on.options(f"{COL}/c/search", headers=preflight)
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    other = on.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
