"""The auth matrix: no key, wrong key, each role, workspace-scoped keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from server_util import assert_error

from keeldb.errors import InvalidArgumentError
from keeldb.server.config import (
    ADMIN,
    READ_ONLY,
    READ_WRITE,
    ApiKey,
    KeyStore,
    ServerConfig,
    is_loopback,
    load_keys_file,
)
from keeldb.server.runner import check_bind

ADMIN_KEY = "admin-key-0001"
RW_KEY = "rw-key-00000002"
RO_KEY = "ro-key-00000003"
SCOPED_KEY = "scoped-key-0004"  # read-write, workspace "team" only

KEYS = [
    ApiKey(ADMIN_KEY, ADMIN),
    ApiKey(RW_KEY, READ_WRITE),
    ApiKey(RO_KEY, READ_ONLY),
    ApiKey(SCOPED_KEY, READ_WRITE, frozenset({"team"})),
]

TEAM = "/v1/workspaces/team/collections"
DEFAULT = "/v1/workspaces/default/collections"


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def secured(make_api: Any) -> Any:
    api = make_api(keys=KEYS)
    for base in (TEAM, DEFAULT):
        resp = api.put(f"{base}/c", json={"dim": 2}, headers=h(ADMIN_KEY))
        assert resp.status_code == 200, resp.text
        api.post(
            f"{base}/c/upsert", json={"ids": ["a"], "vectors": [[1, 0]]}, headers=h(ADMIN_KEY)
        ).raise_for_status()
    return api


def test_healthz_is_open_everything_else_needs_a_key(secured: Any) -> None:
    assert secured.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/v1/workspaces"),
        ("GET", f"{DEFAULT}"),
        ("GET", f"{DEFAULT}/c"),
        ("POST", f"{DEFAULT}/c/count"),
        ("GET", "/metrics"),
        ("GET", f"{DEFAULT}/c/stats"),
        ("GET", "/openapi.json"),
    ]:
        assert_error(secured.request(method, path), 401, "unauthorized")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer wrong-key-123",
        "Bearer ",
        "Basic " + ADMIN_KEY,
        ADMIN_KEY,
        f"Bearer {ADMIN_KEY}x",
        f"Bearer {ADMIN_KEY[:-1]}",
    ],
)
def test_wrong_or_malformed_keys_are_401(secured: Any, header: str) -> None:
    resp = secured.post(f"{DEFAULT}/c/count", headers={"Authorization": header})
    assert_error(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"


def test_auth_is_checked_before_the_body_is_parsed(secured: Any) -> None:
    resp = secured.post(
        f"{DEFAULT}/c/search", content=b"{garbage", headers={"content-type": "application/json"}
    )
    assert_error(resp, 401, "unauthorized")


def test_read_only_key_reads_but_cannot_write(secured: Any) -> None:
    ro = h(RO_KEY)
    assert secured.post(f"{DEFAULT}/c/count", headers=ro).json() == {"count": 1}
    assert (
        secured.post(f"{DEFAULT}/c/search", json={"vector": [1, 0]}, headers=ro).status_code == 200
    )
    assert secured.get(f"{DEFAULT}/c/stats", headers=ro).status_code == 200
    writes = [
        ("POST", f"{DEFAULT}/c/upsert", {"ids": ["b"], "vectors": [[0, 1]]}),
        ("POST", f"{DEFAULT}/c/delete", {"ids": ["a"]}),
        ("POST", f"{DEFAULT}/c/compact", None),
        ("POST", f"{DEFAULT}/c/flush", None),
        ("PUT", f"{DEFAULT}/new", {"dim": 2}),
        ("DELETE", f"{DEFAULT}/c", None),
    ]
    for method, path, body in writes:
        assert_error(secured.request(method, path, json=body, headers=ro), 403, "permission_denied")
    assert_error(secured.get("/metrics", headers=ro), 403, "permission_denied")
    assert secured.post(f"{DEFAULT}/c/count", headers=ro).json() == {"count": 1}


def test_read_write_key_writes_but_no_metrics(secured: Any) -> None:
    rw = h(RW_KEY)
    resp = secured.post(f"{DEFAULT}/c/upsert", json={"ids": ["b"], "vectors": [[0, 1]]}, headers=rw)
    assert resp.status_code == 200, resp.text
    assert secured.put(f"{DEFAULT}/rw", json={"dim": 2}, headers=rw).status_code == 200
    assert secured.delete(f"{DEFAULT}/rw", headers=rw).status_code == 200
    assert_error(secured.get("/metrics", headers=rw), 403, "permission_denied")
    assert secured.get("/metrics", headers=h(ADMIN_KEY)).status_code == 200


def test_workspace_scoped_key_stays_in_its_workspace(secured: Any) -> None:
    sc = h(SCOPED_KEY)
    assert secured.post(f"{TEAM}/c/count", headers=sc).json() == {"count": 1}
    resp = secured.post(f"{TEAM}/c/upsert", json={"ids": ["z"], "vectors": [[0, 1]]}, headers=sc)
    assert resp.status_code == 200
    for method, path, body in [
        ("POST", f"{DEFAULT}/c/count", None),
        ("POST", f"{DEFAULT}/c/search", {"vector": [1, 0]}),
        ("POST", f"{DEFAULT}/c/upsert", {"ids": ["z"], "vectors": [[0, 1]]}),
        ("GET", f"{DEFAULT}", None),
        ("GET", f"{DEFAULT}/c", None),
        ("PUT", "/v1/workspaces/elsewhere/collections/x", {"dim": 2}),
    ]:
        assert_error(secured.request(method, path, json=body, headers=sc), 403, "permission_denied")
    # Listings only show what the key may see.
    assert secured.get("/v1/workspaces", headers=sc).json() == {"workspaces": ["team"]}
    listed = secured.get("/v1/collections", headers=sc).json()["collections"]
    assert [(c["workspace"], c["name"]) for c in listed] == [("team", "c")]
    # A 403 elsewhere says nothing about whether the collection exists.
    missing = secured.post(f"{DEFAULT}/missing/count", headers=sc)
    assert_error(missing, 403, "permission_denied")


def test_keys_file_and_env_are_merged(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(
            [
                {"key": "file-key-ro-01", "role": "read-only", "workspaces": ["a", "b"]},
                {"key": "file-key-admin", "role": "admin"},
            ]
        )
    )
    store = ServerConfig.collect_keys(
        ["cli-key-00001"], path, env={"KEELDB_API_KEY": "env-key-0001"}
    )
    assert len(store) == 4
    ro = store.lookup("file-key-ro-01")
    assert ro is not None and ro.role == READ_ONLY and ro.workspaces == frozenset({"a", "b"})
    assert ro.allows("read", "a") and not ro.allows("read", "c") and not ro.allows("write", "a")
    env_key = store.lookup("env-key-0001")
    assert env_key is not None and env_key.role == ADMIN
    assert store.lookup("nope") is None
    assert not KeyStore().enabled


@pytest.mark.parametrize(
    "content",
    [
        '{"key": "x"}',
        "not json",
        '[{"role": "admin"}]',
        '[{"key": "short"}]',
        '[{"key": "long-enough-key", "role": "root"}]',
        '[{"key": "long-enough-key", "workspaces": "team"}]',
        '[{"key": "long-enough-key", "extra": 1}]',
    ],
)
def test_bad_keys_files_are_refused(tmp_path: Path, content: str) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(InvalidArgumentError, match="keys file"):
        load_keys_file(path)


def test_non_loopback_bind_needs_keys_or_insecure() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    open_cfg = ServerConfig()
    with pytest.raises(InvalidArgumentError, match="--insecure"):
        check_bind("0.0.0.0", open_cfg, insecure=False)
    check_bind("0.0.0.0", open_cfg, insecure=True)
    check_bind("127.0.0.1", open_cfg, insecure=False)
    check_bind("0.0.0.0", ServerConfig(keys=KeyStore(KEYS)), insecure=False)


def test_the_schema_needs_a_key_unless_public(make_api: Any) -> None:
    # /docs and /redoc are data-free pages that fetch /openapi.json with the tab's key
    # (keeldb.server.dashboard); the schema itself keeps the key check.
    secured = make_api(keys=KEYS)
    assert_error(secured.get("/openapi.json"), 401, "unauthorized")
    assert secured.get("/openapi.json", headers=h(RO_KEY)).json()["info"]["title"] == "KeelDB"
    assert "swagger-ui-bundle.js" in secured.get("/docs").text
    assert "redoc.standalone.js" in secured.get("/redoc").text
    public = make_api(keys=KEYS, public_docs=True)
    assert public.get("/openapi.json").status_code == 200
    assert public.get("/docs").status_code == 200
    assert_error(public.get("/v1/workspaces"), 401, "unauthorized")
