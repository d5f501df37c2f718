"""keeldb.Client against a real server: names, update, transactions, backup (issue 17)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.client import Client, RemoteCollection
from keeldb.errors import (
    AlreadyExistsError,
    ClosedError,
    DimensionMismatchError,
    InvalidArgumentError,
    PermissionDeniedError,
)
from keeldb.server.testing import ServerProcess

ADMIN = "client-admin-key"
WRITER = "client-writer-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("client17"))
    keys = root / "keys.json"
    keys.write_text(f'[{{"key": "{WRITER}", "role": "read-write"}}]')
    args = ["--api-key", ADMIN, "--keys-file", str(keys), "--backup-dir", str(root / "backups")]
    with ServerProcess(root / "db", args=args) as srv:
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, api_key=ADMIN) as c:
        yield c


@pytest.fixture
def col(client: Client, request: pytest.FixtureRequest) -> Iterator[RemoteCollection]:
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    collection = client.create_collection(name, dim=2, metric="l2")
    yield collection
    client.drop_collection(name)


BAD_NAMES = ["../x", "x/upsert", "", ".hidden", "a b", "x" * 200, "é"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_bad_names_raise_invalid_argument_like_the_embedded_api(
    client: Client, name: str, tmp_path: Path
) -> None:
    # Issue 17 item 7: "../x" gave NotFoundError, "x/upsert" a method_not_allowed RemoteError.
    with keeldb.open(tmp_path / "db") as db, pytest.raises(InvalidArgumentError) as embedded:
        db.create_collection(name, dim=2)
    with pytest.raises(InvalidArgumentError) as remote:
        client.create_collection(name, dim=2)
    assert str(remote.value) == str(embedded.value)
    for call in (
        lambda: client.get_collection(name),
        lambda: client.drop_collection(name),
        lambda: client.create_collection("ok", dim=2, workspace=name),
        lambda: client.list_collections(name),
        lambda: client.backup(name),
    ):
        with pytest.raises(InvalidArgumentError):
            call()
    assert [i.name for i in client.list_collections()] == []


def test_update_merges_replaces_and_returns_missing(col: RemoteCollection) -> None:
    col.upsert(["a", "b"], [[1, 0], [0, 1]], [{"x": 1, "y": 2}, {"x": 5}])
    assert col.update(["a", "ghost"], [{"x": np.int64(9), "y": None}, {"x": 0}]) == ["ghost"]
    assert col.update(["b"], [{"z": 1}], mode="replace") == []
    a, b, ghost = col.get(["a", "b", "ghost"])
    assert a is not None and a.metadata == {"x": 9}
    np.testing.assert_array_equal(a.vector, [1, 0])
    assert b is not None and b.metadata == {"z": 1} and ghost is None
    with pytest.raises(InvalidArgumentError):
        col.update(["a"], [{"x": 1}], mode="upsert")


def test_transaction_is_one_atomic_request(col: RemoteCollection) -> None:
    col.upsert(["old"], [[1, 0]])
    with col.transaction() as tx:
        tx.upsert(["a", "b"], np.eye(2, dtype=np.float32), [{"n": 1}, None])
        tx.delete(["old"])
        assert col.count() == 1  # nothing is sent before the block ends
    assert sorted(r.id for r in col.scan().records) == ["a", "b"]
    tx = col.transaction()
    tx.upsert(["c"], [[1, 1]])
    assert tx.commit() == {"upserted": 1, "deleted": 0, "replaced": 0}
    with pytest.raises(ClosedError):
        tx.upsert(["d"], [[1, 1]])
    assert col.transaction().commit() == {"upserted": 0, "deleted": 0, "replaced": 0}


def test_an_exception_in_the_block_sends_nothing(col: RemoteCollection) -> None:
    with pytest.raises(RuntimeError), col.transaction() as tx:
        tx.upsert(["a"], [[1, 0]])
        raise RuntimeError("changed my mind")
    assert col.count() == 0


def test_staging_checks_what_needs_no_data(col: RemoteCollection) -> None:
    with col.transaction() as tx:
        with pytest.raises(DimensionMismatchError):
            tx.upsert(["a"], [[1, 0, 0]])
        with pytest.raises(InvalidArgumentError):
            tx.upsert(["a", "b"], [[1, 0]])
        with pytest.raises(InvalidArgumentError):
            tx.upsert("ab", [[1, 0], [0, 1]])
        with pytest.raises(InvalidArgumentError):
            tx.upsert(["a"], [[1, 0]], [{"v": object()}])
        with pytest.raises(InvalidArgumentError):
            tx.delete([1, 2])
        tx.upsert(["ok"], [[1, 0]])
    assert [r.id for r in col.scan().records] == ["ok"]


def test_a_bad_item_found_by_the_server_applies_nothing(col: RemoteCollection) -> None:
    col.upsert(["keep"], [[1, 0]])
    with pytest.raises(InvalidArgumentError, match=r"ops\[2\]"), col.transaction() as tx:
        tx.upsert(["a"], [[1, 0]])
        tx.delete(["keep"])
        tx.upsert(["b", "b"], [[1, 0], [0, 1]])  # duplicate ids: the engine's check
        tx.upsert(["c"], [[0, 1]])
    assert [r.id for r in col.scan().records] == ["keep"]


def test_backup_needs_an_admin_key_and_restores(
    server: ServerProcess, client: Client, col: RemoteCollection, tmp_path: Path
) -> None:
    col.upsert(["a"], [[1, 0]], [{"k": 1}])
    with Client(server.url, api_key=WRITER) as writer, pytest.raises(PermissionDeniedError):
        writer.backup("by-writer")
    report = client.backup("nightly")
    assert isinstance(report, keeldb.BackupReport)
    assert Path(report.path).name == "nightly" and f"default/{col.name}" in report.collections
    with pytest.raises(AlreadyExistsError):
        client.backup("nightly")
    assert Path(client.backup().path).name.startswith("backup-")
    keeldb.restore(report.path, tmp_path / "restored")
    with keeldb.open(tmp_path / "restored") as db:
        record = db.get_collection(col.name).get(["a"])[0]
        assert record is not None and record.metadata == {"k": 1}


def test_empty_staged_upserts_are_no_ops(col: RemoteCollection) -> None:
    with col.transaction() as tx:
        tx.upsert([], [])
        tx.upsert([], np.zeros((0, 2), dtype=np.float32))
        tx.upsert(["a"], [[1, 0]])
    assert col.count() == 1
    tx = col.transaction()
    tx.upsert([], [])
    assert tx.commit() == {"upserted": 0, "deleted": 0, "replaced": 0}
