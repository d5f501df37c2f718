"""keeldb.Client against a real server process: every method, errors, wire, connections."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

import keeldb
from keeldb.client import Client, RemoteCollection
from keeldb.errors import (
    AlreadyExistsError,
    AuthError,
    CollectionNotFoundError,
    DimensionMismatchError,
    InvalidArgumentError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RemoteError,
)
from keeldb.server.testing import ServerProcess

ADMIN = "client-admin-key"
READER = "client-reader-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("client"))
    keys = root / "keys.json"
    keys.write_text(json.dumps([{"key": READER, "role": "read-only", "workspaces": ["default"]}]))
    with ServerProcess(
        root / "db", args=["--api-key", ADMIN, "--keys-file", str(keys), "--max-batch", "500"]
    ) as srv:
        yield srv


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url, api_key=ADMIN) as c:
        yield c


@pytest.fixture
def col(client: Client, request: pytest.FixtureRequest) -> Iterator[RemoteCollection]:
    name = request.node.name.replace("[", "_").replace("]", "")[:60]
    collection = client.create_collection(name, dim=8, metric="l2")
    yield collection
    client.drop_collection(name)


def _data(n: int = 50, dim: int = 8, seed: int = 0) -> tuple[list[str], np.ndarray, list[Any]]:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    ids = [f"id{i}" for i in range(n)]
    metadata = [{"i": i, "group": "odd" if i % 2 else "even"} for i in range(n)]
    return ids, vectors, metadata


def test_client_is_exported_lazily_from_keeldb() -> None:
    assert keeldb.Client is Client


def test_database_level_methods(client: Client) -> None:
    assert client.health()["status"] == "ok"
    made = client.create_collection(
        "dbl", dim=3, metric="ip", workspace="ws1", m=8, ef_construction=64, ef_search=32
    )
    assert (made.name, made.workspace, made.dim, made.metric) == ("dbl", "ws1", 3, "ip")
    again = client.create_collection(
        "dbl",
        dim=3,
        metric="ip",
        workspace="ws1",
        m=8,
        ef_construction=64,
        ef_search=32,
        exist_ok=True,
    )
    assert again.dim == 3
    with pytest.raises(AlreadyExistsError):
        client.create_collection("dbl", dim=3, metric="ip", workspace="ws1")
    got = client.get_collection("dbl", workspace="ws1")
    info = got.info()
    assert (info.m, info.ef_construction, info.ef_search, info.count) == (8, 64, 32, 0)
    assert "ws1" in client.list_workspaces()
    assert [i.name for i in client.list_collections("ws1")] == ["dbl"]
    assert ("ws1", "dbl") in {(i.workspace, i.name) for i in client.list_collections()}
    client.drop_collection("dbl", workspace="ws1")
    with pytest.raises(CollectionNotFoundError):
        client.get_collection("dbl", workspace="ws1")
    with pytest.raises(CollectionNotFoundError):
        client.drop_collection("dbl", workspace="ws1")
    assert "keeldb_http_requests_total" in client.metrics()


def test_upsert_get_count_delete_roundtrip(col: RemoteCollection) -> None:
    ids, vectors, metadata = _data()
    col.upsert(ids, vectors, metadata)
    records = col.get(["id3", "missing", "id7"])
    assert records[1] is None
    assert records[0] is not None and records[0].id == "id3"
    np.testing.assert_array_equal(records[0].vector, vectors[3])  # bit-exact over the wire
    assert records[0].vector.dtype == np.float32
    assert records[0].metadata == {"i": 3, "group": "odd"}
    assert col.count() == 50
    assert col.count(filter={"group": "even"}) == 25
    assert col.delete(ids=["id0", "id1", "nope"]) == 2
    assert col.delete(filter={"i": {"$gte": 40}}) == 10
    assert col.count() == 38
    col.upsert(["id3"], vectors[3:4] * 2)  # metadata None keeps the old metadata
    assert col.get(["id3"])[0].metadata == {"i": 3, "group": "odd"}  # type: ignore[union-attr]


def test_search_and_search_batch_match_exact_neighbours(col: RemoteCollection) -> None:
    ids, vectors, metadata = _data(n=100)
    col.upsert(ids, vectors, metadata)
    query = vectors[17] + 0.01
    hits = col.search(query, k=5)
    exact = np.argsort(np.linalg.norm(vectors - query, axis=1))[:5]
    assert [h.id for h in hits] == [ids[i] for i in exact]
    assert hits[0].metadata == {"i": 17, "group": "odd"}
    assert all(a.distance <= b.distance for a, b in zip(hits, hits[1:], strict=False))
    filtered = col.search(query, k=5, ef=128, filter={"group": "even"})
    assert len(filtered) == 5 and all(h.metadata["group"] == "even" for h in filtered)
    batch = col.search_batch(vectors[:3], k=1)
    assert [r[0].id for r in batch] == ["id0", "id1", "id2"]
    assert (
        col.search_batch(vectors[:2], k=2, filter={"group": "odd"})[0][0].metadata["group"] == "odd"
    )
    # exact=True goes over the wire (with ef it is refused server-side)
    assert [h.id for h in col.search(query, k=5, exact=True)] == [ids[i] for i in exact]
    assert col.search_batch(vectors[:3], k=1, exact=True) == batch
    with pytest.raises(InvalidArgumentError, match="ef has no meaning"):
        col.search(query, k=5, ef=32, exact=True)
    with pytest.raises(InvalidArgumentError, match="ef has no meaning"):
        col.search_batch(vectors[:2], k=5, ef=32, exact=True)
    with pytest.raises(InvalidArgumentError, match="exact must be"):
        col.search(query, k=5, exact=1)  # type: ignore[arg-type]
    # with_metadata=False goes over the wire: the same hits, metadata null
    bare = col.search(query, k=5, with_metadata=False)
    assert [(h.id, h.distance) for h in bare] == [(h.id, h.distance) for h in hits]
    assert all(h.metadata is None for h in bare)
    bare_batch = col.search_batch(vectors[:3], k=1, with_metadata=False)
    assert [r[0].id for r in bare_batch] == ["id0", "id1", "id2"]
    assert all(r[0].metadata is None for r in bare_batch)
    with pytest.raises(InvalidArgumentError, match="with_metadata must be"):
        col.search_batch(vectors[:2], k=1, with_metadata=0)  # type: ignore[arg-type]


def test_scan_stats_flush_compact(col: RemoteCollection) -> None:
    ids, vectors, metadata = _data(n=30)
    col.upsert(ids, vectors, metadata)
    seen: list[str] = []
    cursor = None
    while True:
        page = col.scan(limit=7, cursor=cursor)
        assert len(page.records) <= 7
        seen += [r.id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    odd = col.scan(filter={"group": "odd"}, limit=100)
    assert len(odd.records) == 15 and odd.next_cursor is None
    col.delete(ids=ids[:10])
    col.flush()
    stats = col.stats()
    assert stats.live_count == 20 and stats.name == col.name
    report = col.compact()
    assert report.segments_after >= 0 and report.duration_s >= 0
    assert col.count() == 20


def test_server_errors_come_back_as_the_same_classes(client: Client, col: RemoteCollection) -> None:
    with pytest.raises(DimensionMismatchError):
        col.upsert(["a"], np.ones((1, 3)))
    with pytest.raises(InvalidArgumentError):
        col.search(np.ones(8), k=0)
    with pytest.raises(InvalidArgumentError):
        col.upsert(["a"], [[float("nan")] * 8])
    with pytest.raises(PayloadTooLargeError):
        col.upsert([f"x{i}" for i in range(501)], np.ones((501, 8)))
    with pytest.raises(CollectionNotFoundError):
        client.get_collection("never-made")
    with (
        Client(client.url, api_key="wrong-key-xyz") as stranger,
        pytest.raises(AuthError) as unauthorized,
    ):
        stranger.list_workspaces()
    assert type(unauthorized.value) is AuthError
    with Client(client.url, api_key=READER) as reader:
        assert reader.get_collection(col.name).count() == 0
        with pytest.raises(PermissionDeniedError):
            reader.get_collection(col.name).upsert(["a"], np.ones((1, 8)))
        with pytest.raises(PermissionDeniedError):
            reader.create_collection("x", dim=2, workspace="other")


def test_api_key_comes_from_the_environment(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEELDB_API_KEY", READER)
    with Client(server.url) as c:
        assert "default" in c.list_workspaces() or c.list_workspaces() == []
    monkeypatch.delenv("KEELDB_API_KEY")
    with Client(server.url) as c, pytest.raises(AuthError):
        c.list_workspaces()


def test_one_connection_is_reused(client: Client, col: RemoteCollection) -> None:
    col.upsert(["a"], np.ones((1, 8)))
    for _ in range(20):
        col.count()
    assert client._transport.idle_connections() == 1  # type: ignore[attr-defined]


def test_vectors_travel_as_base64(col: RemoteCollection, server: ServerProcess) -> None:
    sent: list[dict[str, Any]] = []
    c = Client(server.url, api_key=ADMIN)
    transport_request = c._transport.request

    def record(method: str, path: str, content: bytes | None) -> tuple[int, bytes]:
        if method == "POST":
            sent.append(json.loads(content or b"null"))
        return transport_request(method, path, content)

    c._transport.request = record  # type: ignore[method-assign]
    remote = c.get_collection(col.name)
    remote.upsert(["a", "b"], np.ones((2, 8)))
    remote.search(np.ones(8), k=1)
    c.close()
    upsert_body, search_body = sent[-2], sent[-1]
    assert upsert_body["vectors"]["shape"] == [2, 8] and isinstance(
        upsert_body["vectors"]["data"], str
    )
    assert search_body["vector"]["shape"] == [8]


def test_client_is_thread_safe(client: Client, col: RemoteCollection) -> None:
    ids, vectors, metadata = _data(n=40)
    col.upsert(ids, vectors, metadata)
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for j in range(10):
                i = (seed * 10 + j) % 40
                assert col.search(vectors[i], k=1)[0].id == ids[i]
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_unreachable_server_and_foreign_errors_are_remote_errors() -> None:
    with (
        Client("http://127.0.0.1:9", timeout_s=2) as dead,
        pytest.raises(RemoteError, match="cannot reach"),
    ):
        dead.list_workspaces()

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    with Client("http://example", transport=httpx.MockTransport(proxy)) as c:
        with pytest.raises(RemoteError, match="HTTP 502"):
            c.list_workspaces()

    def unknown_code(request: httpx.Request) -> httpx.Response:
        return httpx.Response(418, json={"error": "teapot", "message": "short and stout"})

    with Client("http://example", transport=httpx.MockTransport(unknown_code)) as c:
        with pytest.raises(RemoteError, match="teapot"):
            c.list_workspaces()


def test_client_side_bad_input_is_invalid_argument(col: RemoteCollection) -> None:
    with pytest.raises(InvalidArgumentError):
        col.upsert(["a"], [["not", "numbers"]])
    with pytest.raises(InvalidArgumentError):
        col.upsert(["a"], np.ones((1, 8)), [{"when": object()}])


@pytest.mark.parametrize(("field", "other"), [("exact", True), ("with_metadata", False)])
def test_search_options_are_sent_only_when_not_the_default(field: str, other: bool) -> None:
    """Servers before 0.2 refuse unknown fields: a plain search must mention neither
    ``exact`` nor ``with_metadata``; a search that changes one sends just that one."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"hits": [], "results": [[]]})

    with Client("http://test", transport=httpx.MockTransport(handler)) as client:
        info = keeldb.CollectionInfo("c", "default", 2, "l2", 0, 16, 200, 64, 0.0, "flat")
        col = RemoteCollection(client, info)
        col.search([1.0, 2.0], k=3, **{field: not other})
        col.search_batch([[1.0, 2.0]], k=3)
        col.search([1.0, 2.0], k=3, **{field: other})
        col.search_batch([[1.0, 2.0]], k=3, **{field: other})
    assert [sorted(set(b) - {"vector", "vectors", "k", "ef", "filter"}) for b in bodies] == [
        [],
        [],
        [field],
        [field],
    ]
    assert bodies[2][field] is other and bodies[3][field] is other


def test_empty_batches_are_a_no_op_through_the_client(col: RemoteCollection) -> None:
    """Issue 17: through the client an empty upsert was an HTTP 500 (and ``upsert([],
    [])`` said "vectors have dimension 0"); an empty batch is a no-op everywhere."""
    col.upsert([], np.zeros((0, 8), np.float32))
    col.upsert([], [])
    assert col.delete([]) == 0
    with col.transaction() as tx:
        tx.upsert([], np.zeros((0, 8), np.float32))
        tx.delete([])
    assert col.count() == 0
    assert col.get([]) == []
