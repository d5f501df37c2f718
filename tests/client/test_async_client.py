"""keeldb.AsyncClient against a real server process: every method, errors, transactions."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest

import keeldb
from keeldb.aclient import AsyncClient, AsyncRemoteCollection
from keeldb.errors import (
    AlreadyExistsError,
    AuthError,
    CollectionNotFoundError,
    DimensionMismatchError,
    InvalidArgumentError,
    PermissionDeniedError,
    RemoteError,
)
from keeldb.server.testing import ServerProcess, free_port

ADMIN = "async-admin-key"
READER = "async-reader-key"
T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = Path(tmp_path_factory.mktemp("aclient"))
    keys = root / "keys.json"
    keys.write_text(f'[{{"key": "{READER}", "role": "read-only"}}]')
    args = ["--api-key", ADMIN, "--keys-file", str(keys), "--backup-dir", str(root / "backups")]
    with ServerProcess(root / "db", args=args) as srv:
        yield srv


def run(server: ServerProcess, body: Callable[[AsyncClient], Awaitable[T]], key: str = ADMIN) -> T:
    """Run ``body(client)`` in a fresh event loop with a client that is closed after."""

    async def main() -> T:
        async with AsyncClient(server.url, api_key=key) as client:
            return await body(client)

    return asyncio.run(main())


def test_async_client_is_exported_lazily_from_keeldb() -> None:
    assert keeldb.AsyncClient is AsyncClient


def test_database_level_methods(server: ServerProcess) -> None:
    async def body(client: AsyncClient) -> None:
        assert (await client.health())["status"] == "ok"
        col = await client.create_collection("dbl", dim=3, metric="ip", workspace="ws1", m=8)
        assert (col.name, col.workspace, col.dim, col.metric) == ("dbl", "ws1", 3, "ip")
        again = await client.create_collection(
            "dbl", dim=3, metric="ip", workspace="ws1", m=8, exist_ok=True
        )
        assert again.dim == 3
        with pytest.raises(AlreadyExistsError):
            await client.create_collection("dbl", dim=3, metric="ip", workspace="ws1")
        got = await client.get_collection("dbl", workspace="ws1")
        assert (await got.info()).m == 8
        assert "ws1" in await client.list_workspaces()
        assert [i.name for i in await client.list_collections("ws1")] == ["dbl"]
        assert ("ws1", "dbl") in {(i.workspace, i.name) for i in await client.list_collections()}
        assert "keeldb_http_requests_total" in await client.metrics()
        report = await client.backup("async-backup")
        assert Path(report.path).name == "async-backup" and "ws1/dbl" in report.collections
        await client.drop_collection("dbl", workspace="ws1")
        with pytest.raises(CollectionNotFoundError):
            await client.get_collection("dbl", workspace="ws1")
        with pytest.raises(InvalidArgumentError):
            await client.create_collection("x/upsert", dim=3)

    run(server, body)


def test_collection_methods_and_concurrent_tasks(server: ServerProcess) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 4)).astype(np.float32)
    ids = [f"id{i}" for i in range(40)]

    async def body(client: AsyncClient) -> None:
        col = await client.create_collection("c", dim=4, metric="l2")
        # Four upserts in flight at once on one client.
        await asyncio.gather(
            *(
                col.upsert(
                    ids[i : i + 10], vectors[i : i + 10], [{"i": j} for j in range(i, i + 10)]
                )
                for i in range(0, 40, 10)
            )
        )
        assert await col.count() == 40
        assert await col.count(filter={"i": {"$lt": 5}}) == 5
        record = (await col.get(["id3", "nope"]))[0]
        assert record is not None
        np.testing.assert_array_equal(record.vector, vectors[3])
        hits = await col.search(vectors[7], k=3)
        assert hits[0].id == "id7" and hits[0].metadata == {"i": 7}
        exact = await col.search(vectors[7], k=3, exact=True, with_metadata=False)
        assert [h.id for h in exact] == [h.id for h in hits] and exact[0].metadata is None
        batch = await col.search_batch(vectors[:2], k=1)
        assert [r[0].id for r in batch] == ["id0", "id1"]
        page = await col.scan(limit=30)
        assert len(page.records) == 30 and page.next_cursor is not None
        rest = await col.scan(limit=30, cursor=page.next_cursor)
        assert len(rest.records) == 10 and rest.next_cursor is None
        assert await col.update(["id0", "ghost"], [{"i": 100}, {}]) == ["ghost"]
        assert (await col.get(["id0"]))[0].metadata == {"i": 100}  # type: ignore[union-attr]
        assert await col.delete(["id0", "id1"]) == 2
        assert await col.delete(filter={"i": {"$gte": 30}}) == 10
        await col.flush()
        assert (await col.compact()).segments_after >= 0
        stats = await col.stats()
        assert stats.live_count == 28 == (await col.info()).count
        with pytest.raises(DimensionMismatchError):
            await col.upsert(["bad"], [[1, 2, 3]])
        await client.drop_collection("c")

    run(server, body)


def test_async_transaction_commits_on_exit_and_sends_nothing_on_error(
    server: ServerProcess,
) -> None:
    async def body(client: AsyncClient) -> None:
        col: AsyncRemoteCollection = await client.create_collection("tx", dim=2, metric="l2")
        await col.upsert(["keep"], [[1, 0]])
        async with col.transaction() as tx:
            tx.upsert(["a"], [[0, 1]])
            tx.delete(["keep"])
            assert await col.count() == 1
        assert [r.id for r in (await col.scan()).records] == ["a"]
        with pytest.raises(RuntimeError):
            async with col.transaction() as tx:
                tx.delete(["a"])
                raise RuntimeError("abort")
        with pytest.raises(InvalidArgumentError, match=r"ops\[1\]"):
            async with col.transaction() as tx:
                tx.upsert(["b"], [[0, 1]])
                tx.upsert(["c", "c"], [[0, 1], [1, 0]])
        assert [r.id for r in (await col.scan()).records] == ["a"]
        tx = col.transaction()
        tx.upsert(["d"], [[1, 1]])
        assert await tx.commit() == {"upserted": 1, "deleted": 0, "replaced": 0}
        await client.drop_collection("tx")

    run(server, body)


def test_errors_are_the_sync_clients(server: ServerProcess) -> None:
    async def unauthorized(client: AsyncClient) -> None:
        with pytest.raises(AuthError):
            await client.list_collections()

    run(server, unauthorized, key="wrong-key-123")

    async def read_only(client: AsyncClient) -> None:
        with pytest.raises(PermissionDeniedError, match="read-only role"):
            await client.create_collection("x", dim=2)
        with pytest.raises(PermissionDeniedError):
            await client.backup()

    run(server, read_only, key=READER)


def test_unreachable_server_and_non_keeldb_answers_raise_remote_error() -> None:
    async def down() -> None:
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", timeout_s=2) as client:
            with pytest.raises(RemoteError, match="cannot reach"):
                await client.health()

    asyncio.run(down())

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad gateway</html>")

    async def html() -> None:
        transport = httpx.MockTransport(proxy)
        async with AsyncClient("http://keeldb.invalid", transport=transport) as client:
            with pytest.raises(RemoteError, match="HTTP 502"):
                await client.list_workspaces()

    asyncio.run(html())
    with pytest.raises(InvalidArgumentError):
        AsyncClient("ftp://127.0.0.1")


def test_the_api_key_comes_from_the_environment(
    server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEELDB_API_KEY", ADMIN)

    async def main() -> Any:
        async with AsyncClient(server.url) as client:
            return await client.list_workspaces()

    assert isinstance(asyncio.run(main()), list)


def test_a_closed_client_says_so(server: ServerProcess) -> None:
    async def main() -> None:
        client = AsyncClient(server.url, api_key=ADMIN)
        assert (await client.health())["status"] == "ok"
        await client.aclose()
        with pytest.raises(RemoteError, match="closed"):
            await client.health()

    asyncio.run(main())
