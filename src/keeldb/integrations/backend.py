"""One KeelDB collection, embedded or remote, with sync and async calls, for the integrations.

The LangChain and LlamaIndex stores hold a :class:`CollectionBackend` and never care where
the collection lives:

- **embedded**: ``path=`` (the backend opens the database and closes it in :meth:`close`)
  or ``client=`` an open :class:`keeldb.Database` (the caller keeps it). Async calls run
  the engine's blocking call in a worker thread (``asyncio.to_thread``): the engine's
  work is CPU and disk, and faiss and numpy release the GIL.
- **remote**: ``url=`` (+ ``api_key=``) makes a :class:`keeldb.Client` for the sync calls
  and, at the first async call, a :class:`keeldb.AsyncClient` for the async ones (native
  asyncio over httpx; one event loop at a time, see :meth:`aclose`); or pass
  ``client=`` a :class:`keeldb.Client` and/or ``async_client=`` a
  :class:`keeldb.AsyncClient` that the caller keeps. With a ``Client`` and no async
  client, async calls run the sync client in a thread.

The collection is looked up lazily and created at the first write from the vectors'
dimension (``create_collection(..., exist_ok=True)`` with ``metric`` and
``collection_params``); reads before it exists return nothing. Writes and reads are cut
into batches of at most ``batch_size`` ids (a server refuses more than ``--max-batch``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from keeldb.errors import CollectionNotFoundError, InvalidArgumentError
from keeldb.types import Hit, Record

__all__ = ["CollectionBackend", "relevance_score"]

T = TypeVar("T")

DEFAULT_BATCH_SIZE = 1000
SCAN_PAGE = 1000


def relevance_score(metric: str, distance: float) -> float:
    """Map a KeelDB distance to a relevance score in [0, 1] (1 = most similar).

    ``cosine``: ``1 - distance / 2`` (= ``(1 + cos) / 2``, exact over the whole range).
    ``l2``: ``1 / (1 + distance)``. ``ip``: ``(1 + dot) / 2`` clipped to [0, 1] (the
    cosine rule for unit-length embeddings; larger dot products saturate at 1).
    """
    if metric == "cosine":
        return min(1.0, max(0.0, 1.0 - distance / 2.0))
    if metric == "l2":
        return 1.0 / (1.0 + max(0.0, distance))
    if metric == "ip":
        return min(1.0, max(0.0, (1.0 - distance) / 2.0))
    raise InvalidArgumentError(f"unknown metric {metric!r}")


class CollectionBackend:
    """A named collection reached embedded or over HTTP (see the module docstring).

    Exactly one of ``path``, ``client`` (a :class:`keeldb.Database` or
    :class:`keeldb.Client`), ``url`` or ``async_client`` alone must say where the data
    is; ``async_client`` may also accompany a ``Client``. Raises
    :class:`~keeldb.errors.InvalidArgumentError` otherwise. Not thread-safe for its own
    lazy set-up, but the underlying collections are.
    """

    def __init__(
        self,
        *,
        collection_name: str,
        path: str | None = None,
        client: Any = None,
        async_client: Any = None,
        url: str | None = None,
        api_key: str | None = None,
        workspace: str = "default",
        metric: str = "cosine",
        collection_params: dict[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        given = [x is not None for x in (path, client, url)]
        if sum(given) > 1 or (sum(given) == 0 and async_client is None):
            raise InvalidArgumentError(
                "give exactly one of path= (embedded), client= (a keeldb.Database or "
                "keeldb.Client) or url= (a KeelDB server)"
            )
        if async_client is not None and (path is not None or url is not None):
            raise InvalidArgumentError("async_client= goes with client= or alone")
        if metric not in ("cosine", "l2", "ip"):
            raise InvalidArgumentError(f"metric must be cosine, l2 or ip, got {metric!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        self.collection_name = collection_name
        self.workspace = workspace
        self.metric = metric
        self.collection_params = dict(collection_params or {})
        self.batch_size = batch_size
        self._owns_sync = False
        self._owns_async = False
        self._url = url
        self._api_key = api_key
        if path is not None:
            import keeldb

            client = keeldb.open(path)
            self._owns_sync = True
        elif url is not None:
            from keeldb.client import Client

            client = Client(url, api_key=api_key)
            self._owns_sync = True
        self._db = client  # keeldb.Database, keeldb.Client or None
        self._aclient = async_client
        self._aclient_loop: asyncio.AbstractEventLoop | None = None
        self._col: Any = None
        self._acol: Any = None

    # --- where the data is ----------------------------------------------------------------

    @property
    def is_remote(self) -> bool:
        """True when the collection is on a server (``Client``/``AsyncClient``/``url``)."""
        from keeldb.engine.database import Database

        return not isinstance(self._db, Database)

    @property
    def has_native_async(self) -> bool:
        """True when async calls go through a :class:`keeldb.AsyncClient`."""
        return self._aclient is not None or self._url is not None

    @property
    def client(self) -> Any:
        """The sync handle: a :class:`keeldb.Database`, a :class:`keeldb.Client` or None."""
        return self._db

    def _sync_db(self) -> Any:
        if self._db is None:
            raise InvalidArgumentError(
                "this store has only an AsyncClient: use the async methods, or pass client="
            )
        return self._db

    def collection(self, dim: int | None = None) -> Any:
        """The collection (cached), created with ``dim`` when missing; None when missing
        and ``dim`` is None."""
        if self._col is None:
            db = self._sync_db()
            try:
                self._col = db.get_collection(self.collection_name, workspace=self.workspace)
            except CollectionNotFoundError:
                if dim is None:
                    return None
                self._col = db.create_collection(
                    self.collection_name,
                    dim,
                    self.metric,
                    workspace=self.workspace,
                    exist_ok=True,
                    **self.collection_params,
                )
        return self._col

    def _async_client(self) -> Any:
        """The AsyncClient: the caller's, or one made from ``url`` for the running loop
        (an httpx client's connections belong to the loop that opened them)."""
        loop = asyncio.get_running_loop()
        if self._url is not None and (self._aclient is None or self._aclient_loop is not loop):
            from keeldb.aclient import AsyncClient

            self._aclient = AsyncClient(self._url, api_key=self._api_key)
            self._aclient_loop = loop
            self._owns_async = True
            self._acol = None
        return self._aclient

    async def acollection(self, dim: int | None = None) -> Any:
        """:meth:`collection` for async code (an ``AsyncRemoteCollection`` when remote
        with an async client, else the sync collection fetched in a thread)."""
        if not self.has_native_async:
            return await asyncio.to_thread(self.collection, dim)
        client = self._async_client()
        if self._acol is None:
            try:
                self._acol = await client.get_collection(
                    self.collection_name, workspace=self.workspace
                )
            except CollectionNotFoundError:
                if dim is None:
                    return None
                self._acol = await client.create_collection(
                    self.collection_name,
                    dim,
                    self.metric,
                    workspace=self.workspace,
                    exist_ok=True,
                    **self.collection_params,
                )
        return self._acol

    # --- calls: each sync call has an async twin --------------------------------------------

    async def _call(self, sync: Callable[[], T], native: Callable[[], Awaitable[T]]) -> T:
        if self.has_native_async:
            return await native()
        return await asyncio.to_thread(sync)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None],
        documents: Sequence[str | None],
    ) -> None:
        """Insert or replace records, ``batch_size`` at a time (each batch atomic);
        creates the collection from the vectors' dimension when missing."""
        if len(ids) == 0:
            return
        col = self.collection(dim=len(vectors[0]))
        for s in range(0, len(ids), self.batch_size):
            e = s + self.batch_size
            col.upsert(list(ids[s:e]), vectors[s:e], list(metadata[s:e]), documents=documents[s:e])

    async def aupsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None],
        documents: Sequence[str | None],
    ) -> None:
        """:meth:`upsert` for async code."""

        async def native() -> None:
            col = await self.acollection(dim=len(vectors[0]))
            for s in range(0, len(ids), self.batch_size):
                e = s + self.batch_size
                await col.upsert(
                    list(ids[s:e]), vectors[s:e], list(metadata[s:e]), documents=documents[s:e]
                )

        if len(ids) == 0:
            return
        await self._call(lambda: self.upsert(ids, vectors, metadata, documents), native)

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records aligned with ``ids`` (None where absent, or all None before the
        collection exists)."""
        col = self.collection()
        if col is None:
            return [None] * len(ids)
        out: list[Record | None] = []
        for s in range(0, len(ids), self.batch_size):
            out.extend(col.get(list(ids[s : s + self.batch_size])))
        return out

    async def aget(self, ids: Sequence[str]) -> list[Record | None]:
        """:meth:`get` for async code."""

        async def native() -> list[Record | None]:
            col = await self.acollection()
            if col is None:
                return [None] * len(ids)
            out: list[Record | None] = []
            for s in range(0, len(ids), self.batch_size):
                out.extend(await col.get(list(ids[s : s + self.batch_size])))
            return out

        return await self._call(lambda: self.get(ids), native)

    def delete(self, ids: Sequence[str] | None = None, filter: Any = None) -> int:
        """Delete by ids or by filter (exactly one); how many existed (0 before the
        collection exists)."""
        col = self.collection()
        if col is None:
            return 0
        if ids is None:
            return int(col.delete(filter=filter))
        return sum(
            int(col.delete(list(ids[s : s + self.batch_size])))
            for s in range(0, len(ids), self.batch_size)
        )

    async def adelete(self, ids: Sequence[str] | None = None, filter: Any = None) -> int:
        """:meth:`delete` for async code."""

        async def native() -> int:
            col = await self.acollection()
            if col is None:
                return 0
            if ids is None:
                return int(await col.delete(filter=filter))
            n = 0
            for s in range(0, len(ids), self.batch_size):
                n += int(await col.delete(list(ids[s : s + self.batch_size])))
            return n

        return await self._call(lambda: self.delete(ids, filter), native)

    def search(self, vector: Any, k: int, filter: Any = None) -> list[Hit]:
        """Vector search (``Collection.search``); [] before the collection exists."""
        col = self.collection()
        return [] if col is None else list(col.search(vector, k, filter=filter))

    async def asearch(self, vector: Any, k: int, filter: Any = None) -> list[Hit]:
        """:meth:`search` for async code."""

        async def native() -> list[Hit]:
            col = await self.acollection()
            return [] if col is None else list(await col.search(vector, k, filter=filter))

        return await self._call(lambda: self.search(vector, k, filter), native)

    def text_search(self, query: str, k: int, filter: Any = None) -> list[Hit]:
        """BM25 search (``Collection.text_search``); [] before the collection exists."""
        col = self.collection()
        return [] if col is None else list(col.text_search(query, k, filter=filter))

    async def atext_search(self, query: str, k: int, filter: Any = None) -> list[Hit]:
        """:meth:`text_search` for async code."""

        async def native() -> list[Hit]:
            col = await self.acollection()
            return [] if col is None else list(await col.text_search(query, k, filter=filter))

        return await self._call(lambda: self.text_search(query, k, filter), native)

    def hybrid_search(
        self, query: str, vector: Any, k: int, filter: Any = None, **fusion: Any
    ) -> list[Hit]:
        """Dense + BM25 search (``Collection.hybrid_search``; ``fusion``: ``fusion=``,
        ``rrf_k=``, ``weights=``); [] before the collection exists."""
        col = self.collection()
        if col is None:
            return []
        return list(col.hybrid_search(query, k, vector=vector, filter=filter, **fusion))

    async def ahybrid_search(
        self, query: str, vector: Any, k: int, filter: Any = None, **fusion: Any
    ) -> list[Hit]:
        """:meth:`hybrid_search` for async code."""

        async def native() -> list[Hit]:
            col = await self.acollection()
            if col is None:
                return []
            hits = await col.hybrid_search(query, k, vector=vector, filter=filter, **fusion)
            return list(hits)

        return await self._call(
            lambda: self.hybrid_search(query, vector, k, filter, **fusion), native
        )

    def scan(self, filter: Any = None, limit: int | None = None) -> list[Record]:
        """Live records matching ``filter`` in id order, at most ``limit`` (all if None)."""
        col = self.collection()
        out: list[Record] = []
        cursor: str | None = None
        while col is not None:
            page_size = SCAN_PAGE if limit is None else min(SCAN_PAGE, limit - len(out))
            if page_size <= 0:
                break
            page = col.scan(filter, limit=page_size, cursor=cursor)
            out.extend(page.records)
            cursor = page.next_cursor
            if cursor is None:
                break
        return out

    async def ascan(self, filter: Any = None, limit: int | None = None) -> list[Record]:
        """:meth:`scan` for async code."""

        async def native() -> list[Record]:
            col = await self.acollection()
            out: list[Record] = []
            cursor: str | None = None
            while col is not None:
                page_size = SCAN_PAGE if limit is None else min(SCAN_PAGE, limit - len(out))
                if page_size <= 0:
                    break
                page = await col.scan(filter, limit=page_size, cursor=cursor)
                out.extend(page.records)
                cursor = page.next_cursor
                if cursor is None:
                    break
            return out

        return await self._call(lambda: self.scan(filter, limit), native)

    def drop(self) -> None:
        """Drop the collection (no-op when missing); the next write creates it again."""
        db = self._sync_db()
        try:
            db.drop_collection(self.collection_name, workspace=self.workspace)
        except CollectionNotFoundError:
            pass
        self._col = None
        self._acol = None

    # --- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this backend opened itself (the database of ``path=``, the Client
        of ``url=``); objects the caller passed in stay open. Idempotent."""
        if self._owns_sync and self._db is not None:
            self._db.close()
            self._owns_sync = False
        self._col = None

    async def aclose(self) -> None:
        """Close the AsyncClient made from ``url=`` (call it from the loop that used it),
        then as :meth:`close`."""
        if self._owns_async and self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
            self._owns_async = False
        self._acol = None
        self.close()
