"""``keeldb.AsyncClient``: :class:`keeldb.Client`'s methods as coroutines, for asyncio apps.

::

    async with keeldb.AsyncClient("http://127.0.0.1:8321", api_key="...") as client:
        col = await client.create_collection("docs", dim=384)
        await col.upsert(["a"], vectors)
        hits = await col.search(query, k=10)
        async with col.transaction() as tx:
            tx.upsert(["b"], more_vectors)
            tx.delete(["a"])

Every method sends the request :mod:`keeldb.protocol.calls` describes — the very one the
sync client sends — and reads the answer with the same decoder, so arguments, results and
exceptions (rebuilt from the wire ``code``) are the sync client's. It runs on
``httpx.AsyncClient`` (the ``server`` extra: ``pip install 'keeldb[server]'``), imported
when a client is created. Connection failures are retried twice (httpx's connect retries:
a request the server may have received is never retried); failures with no KeelDB answer
raise :class:`~keeldb.errors.RemoteError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from keeldb.errors import RemoteError
from keeldb.protocol import calls
from keeldb.protocol.api import collection_path
from keeldb.protocol.calls import Call, analyzer_of_info
from keeldb.transport import CONNECT_RETRIES

if TYPE_CHECKING:
    from keeldb.embeddings.base import EmbeddingFunction
from keeldb.types import (
    BackupReport,
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    Page,
    Record,
)

__all__ = ["AsyncClient", "AsyncRemoteCollection", "AsyncRemoteTransaction"]

T = TypeVar("T")


class AsyncClient:
    """A connection to a KeelDB server for asyncio code: :class:`keeldb.Client`'s
    arguments and methods, each a coroutine.

    ``transport``: an httpx async transport to use instead of the network (tests). Use
    as an async context manager, or ``await client.aclose()``. One client may serve many
    concurrent tasks (httpx pools the connections). Raises ImportError naming the extra
    when httpx is not installed.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        *,
        transport: Any = None,
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - httpx is in the dev extras
            raise ImportError(
                "keeldb.AsyncClient needs httpx: pip install 'keeldb[server]'"
            ) from exc
        self.url = calls.check_url(url)
        self._httpx = httpx
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers=calls.request_headers(api_key),
            timeout=timeout_s,
            transport=transport or httpx.AsyncHTTPTransport(retries=CONNECT_RETRIES),
        )

    async def _run(self, call: Call[T]) -> T:
        """Send ``call``; return its decoded result or raise the server's error."""
        httpx = self._httpx
        content = calls.encode_body(call)
        if self._http.is_closed:
            raise RemoteError("this client is closed")  # as the sync client says
        try:
            response = await self._http.request(call.method, call.path, content=content)
        except httpx.TimeoutException as exc:
            raise RemoteError(f"{call.method} {self.url}{call.path}: timed out ({exc})") from exc
        except httpx.HTTPError as exc:
            raise RemoteError(f"cannot reach KeelDB at {self.url}: {exc!r}") from exc
        return calls.read_answer(call, response.status_code, response.content)

    async def health(self) -> dict[str, Any]:
        """As :meth:`keeldb.Client.health`."""
        return await self._run(calls.health())

    async def create_collection(
        self,
        name: str,
        dim: int | None = None,
        metric: str = "cosine",
        *,
        workspace: str = "default",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        exist_ok: bool = False,
        embedding: EmbeddingFunction | None = None,
        text: Any = None,
        quantization: str | None = None,
    ) -> AsyncRemoteCollection:
        """As :meth:`keeldb.Client.create_collection`."""
        call = calls.create_collection(
            name,
            dim,
            metric,
            workspace,
            m,
            ef_construction,
            ef_search,
            exist_ok,
            embedding,
            text,
            quantization,
        )
        return AsyncRemoteCollection(self, await self._run(call))

    async def get_collection(
        self, name: str, *, workspace: str = "default"
    ) -> AsyncRemoteCollection:
        """As :meth:`keeldb.Client.get_collection`."""
        return AsyncRemoteCollection(self, await self._run(calls.get_collection(name, workspace)))

    async def list_collections(self, workspace: str | None = None) -> list[CollectionInfo]:
        """As :meth:`keeldb.Client.list_collections`."""
        return await self._run(calls.list_collections(workspace))

    async def list_workspaces(self) -> list[str]:
        """As :meth:`keeldb.Client.list_workspaces`."""
        return await self._run(calls.list_workspaces())

    async def drop_collection(self, name: str, *, workspace: str = "default") -> None:
        """As :meth:`keeldb.Client.drop_collection`."""
        await self._run(calls.drop_collection(name, workspace))

    async def backup(self, name: str | None = None) -> BackupReport:
        """As :meth:`keeldb.Client.backup`."""
        return await self._run(calls.backup(name))

    async def metrics(self) -> str:
        """As :meth:`keeldb.Client.metrics`."""
        return await self._run(calls.metrics())

    async def aclose(self) -> None:
        """Close the connections. The client cannot be used afterwards."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self.url!r})"


class AsyncRemoteCollection:
    """A collection on a server: :class:`keeldb.client.RemoteCollection`'s methods as
    coroutines (``transaction()`` is an async context manager). Obtained from
    :meth:`AsyncClient.create_collection` / :meth:`AsyncClient.get_collection`."""

    def __init__(self, client: AsyncClient, info: CollectionInfo) -> None:
        self._client = client
        self.name = info.name
        self.workspace = info.workspace
        self.dim = info.dim
        self.metric = info.metric
        self.embedding_name = info.embedding  # the server's embedding function, if any
        self.analyzer = analyzer_of_info(info.analyzer)  # the full-text analyser
        self._path = collection_path(info.name, info.workspace)

    async def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """As :meth:`keeldb.client.RemoteCollection.upsert`."""
        await self._client._run(calls.upsert(self._path, ids, vectors, metadata, documents))

    async def get(self, ids: Sequence[str]) -> list[Record | None]:
        """As :meth:`keeldb.client.RemoteCollection.get`."""
        return await self._client._run(calls.get(self._path, ids))

    async def delete(self, ids: Sequence[str] | None = None, *, filter: Any = None) -> int:
        """As :meth:`keeldb.client.RemoteCollection.delete`."""
        return await self._client._run(calls.delete(self._path, ids, filter))

    async def update(
        self,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]],
        *,
        mode: str = "merge",
    ) -> list[str]:
        """As :meth:`keeldb.client.RemoteCollection.update`."""
        return await self._client._run(calls.update(self._path, ids, metadata, mode))

    def transaction(self) -> AsyncRemoteTransaction:
        """As :meth:`keeldb.client.RemoteCollection.transaction`, used with ``async
        with``; see :class:`AsyncRemoteTransaction`."""
        return AsyncRemoteTransaction(self._client, self._path, self.dim)

    async def count(self, filter: Any = None) -> int:
        """As :meth:`keeldb.client.RemoteCollection.count`."""
        return await self._client._run(calls.count(self._path, filter))

    async def search(
        self,
        vector: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """As :meth:`keeldb.client.RemoteCollection.search`."""
        call = calls.search(self._path, vector, k, ef, filter, exact, with_metadata, with_documents)
        return await self._client._run(call)

    async def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[list[Hit]]:
        """As :meth:`keeldb.client.RemoteCollection.search_batch`."""
        call = calls.search_batch(
            self._path, vectors, k, ef, filter, exact, with_metadata, with_documents
        )
        return await self._client._run(call)

    async def text_search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Any = None,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """As :meth:`keeldb.client.RemoteCollection.text_search`."""
        call = calls.text_search(self._path, query, k, filter, with_metadata, with_documents)
        return await self._client._run(call)

    async def hybrid_search(
        self,
        query: str,
        k: int = 10,
        *,
        vector: Any = None,
        filter: Any = None,
        fusion: str = "rrf",
        rrf_k: float | None = None,
        weights: Sequence[float] | None = None,
    ) -> list[Hit]:
        """As :meth:`keeldb.client.RemoteCollection.hybrid_search`."""
        call = calls.hybrid_search(self._path, query, k, vector, filter, fusion, rrf_k, weights)
        return await self._client._run(call)

    async def scan(self, filter: Any = None, limit: int = 100, cursor: str | None = None) -> Page:
        """As :meth:`keeldb.client.RemoteCollection.scan`."""
        return await self._client._run(calls.scan(self._path, filter, limit, cursor))

    async def flush(self) -> None:
        """As :meth:`keeldb.client.RemoteCollection.flush`."""
        await self._client._run(calls.flush(self._path))

    async def compact(self) -> CompactionReport:
        """As :meth:`keeldb.client.RemoteCollection.compact`."""
        return await self._client._run(calls.compact(self._path))

    async def stats(self) -> CollectionStats:
        """As :meth:`keeldb.client.RemoteCollection.stats`."""
        return await self._client._run(calls.stats(self._path))

    async def info(self) -> CollectionInfo:
        """As :meth:`keeldb.client.RemoteCollection.info`."""
        return await self._client._run(calls.info(self._path))

    def __repr__(self) -> str:
        return f"AsyncRemoteCollection({self.workspace!r}/{self.name!r} at {self._client.url!r})"


class AsyncRemoteTransaction(calls.StagedTransaction):
    """:class:`keeldb.client.RemoteTransaction` for asyncio: ``upsert`` and ``delete``
    stage on the client (plain calls, no I/O), ``await commit()`` sends them as one
    request applied all or nothing. ``async with``: a normal exit commits, an exception
    rolls back (sends nothing) and propagates."""

    def __init__(self, client: AsyncClient, path: str, dim: int) -> None:
        super().__init__(path, dim)
        self._client = client

    async def commit(self) -> dict[str, int]:
        """As :meth:`keeldb.client.RemoteTransaction.commit`."""
        call = self._commit_call()
        if call is None:
            return self._empty_counts()
        return await self._client._run(call)

    async def __aenter__(self) -> AsyncRemoteTransaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            await self.commit()
        else:
            self.rollback()
