"""POST .../transaction, POST .../update and POST /v1/backup (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_util import COL, assert_error, create

import keeldb
from keeldb.server.config import ADMIN, READ_WRITE, ApiKey


def _records(api: Any, ids: list[str], name: str = "c") -> list[Any]:
    resp = api.post(f"{COL}/{name}/get", json={"ids": ids})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["records"])


def test_transaction_applies_upserts_and_deletes_in_order(api: Any) -> None:
    create(api, dim=2)
    api.post(f"{COL}/c/upsert", json={"ids": ["old"], "vectors": [[1, 0]]}).raise_for_status()
    ops = [
        {
            "op": "upsert",
            "ids": ["a", "b"],
            "vectors": [[1, 0], [0, 1]],
            "metadata": [{"x": 1}, None],
        },
        {"op": "delete", "ids": ["old", "a", "nope"]},
        {"op": "upsert", "ids": ["a"], "vectors": [[0.5, 0.5]], "metadata": [{"x": 2}]},
    ]
    resp = api.post(f"{COL}/c/transaction", json={"ops": ops})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"upserted": 3, "deleted": 2, "replaced": 0}  # "a" was deleted first
    a, b, old = _records(api, ["a", "b", "old"])
    assert a["metadata"] == {"x": 2} and b["metadata"] == {} and old is None


@pytest.mark.parametrize(
    "bad_op, status, code, where",
    [
        (
            {"op": "upsert", "ids": ["z"], "vectors": [[1, 0, 0]]},
            400,
            "dimension_mismatch",
            "ops[2]",
        ),
        ({"op": "upsert", "ids": ["z"], "vectors": [[0, 0]]}, 400, "invalid_argument", "ops[2]"),
        (
            {"op": "upsert", "ids": ["z", "z"], "vectors": [[1, 0], [0, 1]]},
            400,
            "invalid_argument",
            "ops[2]",
        ),
        (
            {"op": "upsert", "ids": ["z"], "vectors": [[1, 0], [0, 1]]},
            400,
            "invalid_argument",
            "ops[2]",
        ),
        ({"op": "delete", "ids": [""]}, 400, "invalid_argument", "ops[2]"),
        ({"op": "merge", "ids": ["z"]}, 400, "invalid_argument", "ops.2"),
        ({"op": "delete", "ids": ["z"], "filter": {}}, 400, "invalid_argument", "ops.2"),
    ],
)
def test_a_bad_op_anywhere_applies_nothing(
    api: Any, bad_op: dict[str, Any], status: int, code: str, where: str
) -> None:
    create(api, dim=2)
    api.post(f"{COL}/c/upsert", json={"ids": ["keep"], "vectors": [[1, 0]]}).raise_for_status()
    ops = [
        {"op": "upsert", "ids": ["a"], "vectors": [[1, 0]]},
        {"op": "delete", "ids": ["keep"]},
        bad_op,
        {"op": "upsert", "ids": ["b"], "vectors": [[0, 1]]},
    ]
    body = assert_error(api.post(f"{COL}/c/transaction", json={"ops": ops}), status, code)
    assert where in body["message"], body
    a, keep, b = _records(api, ["a", "keep", "b"])
    assert a is None and b is None and keep is not None
    assert api.post(f"{COL}/c/count").json() == {"count": 1}


def test_transaction_limits_count_every_op(make_api: Any) -> None:
    api = make_api(max_batch=3)
    create(api, dim=2)
    ops = [
        {"op": "upsert", "ids": [f"x{i}", f"y{i}"], "vectors": [[1, 0], [0, 1]]} for i in range(2)
    ]
    assert_error(api.post(f"{COL}/c/transaction", json={"ops": ops}), 413, "payload_too_large")
    assert api.post(f"{COL}/c/count").json() == {"count": 0}
    assert api.post(f"{COL}/c/transaction", json={"ops": []}).json() == {
        "upserted": 0,
        "deleted": 0,
        "replaced": 0,
    }
    assert_error(
        api.post(f"{COL}/missing/transaction", json={"ops": []}), 404, "collection_not_found"
    )


def test_update_merges_or_replaces_and_reports_missing_ids(api: Any) -> None:
    create(api, dim=2)
    api.post(
        f"{COL}/c/upsert",
        json={
            "ids": ["a", "b"],
            "vectors": [[1, 0], [0, 1]],
            "metadata": [{"x": 1, "y": 2}, {"x": 5}],
        },
    ).raise_for_status()
    resp = api.post(
        f"{COL}/c/update", json={"ids": ["a", "ghost"], "metadata": [{"x": 9, "y": None}, {"x": 0}]}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"missing": ["ghost"]}
    resp = api.post(
        f"{COL}/c/update", json={"ids": ["b"], "metadata": [{"z": 1}], "mode": "replace"}
    )
    assert resp.json() == {"missing": []}
    a, b, ghost = _records(api, ["a", "b", "ghost"])
    assert a["metadata"] == {"x": 9} and a["vector"] == [1.0, 0.0]
    assert b["metadata"] == {"z": 1} and ghost is None
    for bad in (
        {"ids": ["a"], "metadata": [{"x": 1}], "mode": "upsert"},
        {"ids": ["a"], "metadata": [None]},
        {"ids": ["a", "b"], "metadata": [{"x": 1}]},
        {"ids": ["a"]},
    ):
        assert_error(api.post(f"{COL}/c/update", json=bad), 400, "invalid_argument")
    assert _records(api, ["a"])[0]["metadata"] == {"x": 9}


def test_backup_is_refused_without_a_backup_dir(api: Any) -> None:
    body = assert_error(api.post("/v1/backup", json={}), 400, "invalid_argument")
    assert "--backup-dir" in body["message"]


def test_backup_writes_under_the_configured_directory_only(make_api: Any, tmp_path: Path) -> None:
    root = tmp_path / "backups"
    keys = [ApiKey("admin-key-0001", ADMIN), ApiKey("rw-key-00000002", READ_WRITE)]
    api = make_api(keys=keys, backup_dir=str(root))
    admin = {"Authorization": "Bearer admin-key-0001"}
    rw = {"Authorization": "Bearer rw-key-00000002"}
    assert api.put(f"{COL}/c", json={"dim": 2}, headers=admin).status_code == 200
    api.post(
        f"{COL}/c/upsert", json={"ids": ["a"], "vectors": [[1, 0]]}, headers=admin
    ).raise_for_status()

    assert_error(api.post("/v1/backup", json={"name": "b1"}, headers=rw), 403, "permission_denied")
    for hostile in ("../escape", "/tmp/x", "a/b", ".hidden", "", "x" * 200):
        assert_error(
            api.post("/v1/backup", json={"name": hostile}, headers=admin), 400, "invalid_argument"
        )
    assert_error(
        api.post("/v1/backup", json={"path": "/tmp"}, headers=admin), 400, "invalid_argument"
    )
    assert not root.exists() or list(root.iterdir()) == []

    resp = api.post("/v1/backup", json={"name": "b1"}, headers=admin)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["path"] == str(root / "b1")
    assert report["collections"] == ["default/c"] and report["files"] > 0
    assert_error(api.post("/v1/backup", json={"name": "b1"}, headers=admin), 409, "already_exists")
    auto = api.post("/v1/backup", headers=admin)
    assert auto.status_code == 200, auto.text
    assert Path(auto.json()["path"]).parent == root
    assert Path(auto.json()["path"]).name.startswith("backup-")

    restored = tmp_path / "restored"
    keeldb.restore(root / "b1", restored)
    with keeldb.open(restored) as db:
        assert db.get_collection("c").get(["a"])[0] is not None


def test_empty_ops_are_no_ops(api: Any) -> None:
    # Issue 17 item 1: an empty batch is a no-op everywhere (it crashed the engine's log
    # encoder with a 500 when passed through).
    create(api, dim=2)
    empty = {"dtype": "float32", "shape": [0, 2], "data": ""}
    ops = [
        {"op": "upsert", "ids": [], "vectors": []},
        {"op": "upsert", "ids": [], "vectors": empty, "metadata": []},
        {"op": "delete", "ids": []},
        {"op": "upsert", "ids": ["a"], "vectors": [[1, 0]]},
    ]
    resp = api.post(f"{COL}/c/transaction", json={"ops": ops})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"upserted": 1, "deleted": 0, "replaced": 0}
    bad = [{"op": "upsert", "ids": [], "vectors": [], "metadata": [{}]}]
    assert_error(api.post(f"{COL}/c/transaction", json={"ops": bad}), 400, "invalid_argument")
