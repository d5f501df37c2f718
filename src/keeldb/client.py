"""``keeldb.Client``: the embedded Collection API, over HTTP to ``keeldb serve``.

::

    client = keeldb.Client("http://127.0.0.1:8321", api_key="...")
    col = client.create_collection("docs", dim=384)
    col.upsert(["a"], vectors)
    hits = col.search(query, k=10, filter={"year": {"$gte": 2019}})

Methods, arguments, return types and exceptions are those of the embedded database and
collection: a server error comes back as the same :mod:`keeldb.errors` class (rebuilt
from the wire ``code`` by :func:`~keeldb.errors.error_from_code`). Failures with no KeelDB
answer — the server unreachable, a timeout, a proxy's HTML error page — raise
:class:`~keeldb.errors.RemoteError`.

Every method is one request described by :mod:`keeldb.protocol.calls` (shared with
:class:`keeldb.AsyncClient`), executed by :meth:`Client._run`. Vectors are sent as base64
of little-endian float32 (see :mod:`keeldb.protocol.wire`).
Connections are kept alive and pooled (:mod:`keeldb.transport`: a minimal HTTP/1.1 client
on the standard library's sockets, a quarter of httpx's CPU per call); a ``Client`` may be
shared by threads. It needs only the base install: nothing from :mod:`keeldb.server`,
FastAPI or httpx (except for a caller's own ``transport=``).
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from keeldb.protocol import calls
from keeldb.protocol.api import collection_path
from keeldb.protocol.calls import Call, analyzer_of_info
from keeldb.transport import HttpxTransport, PooledTransport, Transport

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

__all__ = ["Client", "RemoteCollection", "RemoteTransaction"]

T = TypeVar("T")


class Client:
    """A connection to a KeelDB server.

    ``url``: the server's base URL (``http://host:8321``). ``api_key``: sent as
    ``Authorization: Bearer``; when None, the ``KEELDB_API_KEY`` environment variable is
    used if set. ``timeout_s``: seconds for connecting and for each response (searches
    and compactions of large collections may need more). ``transport``: an httpx
    transport to use instead of the network (tests; needs ``httpx``). Connection failures
    are retried twice; a request the server may have received is never retried.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        *,
        transport: Any = None,
    ) -> None:
        headers = calls.request_headers(api_key)
        self.url = url.rstrip("/")
        self._transport: Transport
        if transport is None:
            self._transport = PooledTransport(self.url, headers, timeout_s)
        else:
            self._transport = HttpxTransport(self.url, headers, timeout_s, transport)

    def _run(self, call: Call[T]) -> T:
        """Send ``call``; return its decoded result or raise the server's error."""
        status, data = self._transport.request(call.method, call.path, calls.encode_body(call))
        return calls.read_answer(call, status, data)

    # --- the Database API ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok", "version": ...}``; raises
        :class:`RemoteError` when the server cannot be reached."""
        return self._run(calls.health())

    def create_collection(
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
    ) -> RemoteCollection:
        """Create a collection (as ``Database.create_collection``) and return it.

        ``embedding`` (an :class:`~keeldb.embeddings.EmbeddingFunction`) is sent as its
        name and config: the server re-creates it through its registry (400
        ``EmbeddingFunctionError``/``InvalidArgumentError`` when the server does not know
        the name or cannot create it); ``dim`` may then be omitted. ``text``: the
        full-text analyser (an :class:`~keeldb.text.Analyzer` or a dict of its options).

        Raises :class:`~keeldb.errors.AlreadyExistsError` when it exists and ``exist_ok``
        is false (or its parameters differ), :class:`InvalidArgumentError` for bad
        parameters or names (names are checked before sending, with the engine's rule).
        """
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
        return RemoteCollection(self, self._run(call))

    def get_collection(self, name: str, *, workspace: str = "default") -> RemoteCollection:
        """The named collection; raises :class:`~keeldb.errors.CollectionNotFoundError`."""
        return RemoteCollection(self, self._run(calls.get_collection(name, workspace)))

    def list_collections(self, workspace: str | None = None) -> list[CollectionInfo]:
        """Collections of ``workspace``, or of every workspace the key may see (a damaged
        collection has ``damaged`` set, as embedded)."""
        return self._run(calls.list_collections(workspace))

    def list_workspaces(self) -> list[str]:
        """Workspaces holding at least one collection (those the key may see)."""
        return self._run(calls.list_workspaces())

    def drop_collection(self, name: str, *, workspace: str = "default") -> None:
        """Drop a collection and its records; raises ``CollectionNotFoundError``."""
        self._run(calls.drop_collection(name, workspace))

    def backup(self, name: str | None = None) -> BackupReport:
        """Have the server back up the whole database (as ``Database.backup``) into
        ``<its --backup-dir>/<name>``; returns the report, whose ``path`` is on the
        server. ``name`` follows the collection-name rule; None lets the server pick
        ``backup-<UTC time>-<random>``. Needs an admin key; raises InvalidArgumentError
        when the server has no backup directory, AlreadyExistsError when ``name`` exists.
        """
        return self._run(calls.backup(name))

    def metrics(self) -> str:
        """The server's Prometheus text (needs an admin key when keys are on)."""
        return self._run(calls.metrics())

    def close(self) -> None:
        """Close pooled connections. The client cannot be used afterwards."""
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


class RemoteCollection:
    """A collection on a server, with the embedded ``Collection`` methods and semantics.

    Obtained from :meth:`Client.create_collection` / :meth:`Client.get_collection`.
    ``name``, ``workspace``, ``dim`` and ``metric`` are fixed at creation; :meth:`info`
    fetches current figures. Holds no server-side state: cheap to create, never closed.
    """

    def __init__(self, client: Client, info: CollectionInfo) -> None:
        self._client = client
        self.name = info.name
        self.workspace = info.workspace
        self.dim = info.dim
        self.metric = info.metric
        self.embedding_name = info.embedding  # the server's embedding function, if any
        self.analyzer = analyzer_of_info(info.analyzer)  # the full-text analyser
        self._path = collection_path(info.name, info.workspace)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """Insert or replace records ``ids[i] -> vectors[i]`` with ``metadata[i]`` and
        ``documents[i]`` (the record's text, indexed for :meth:`text_search`; None, for
        the whole list or an entry, keeps an existing record's document, as metadata).
        ``vectors`` None: the collection's embedding function (on the server) computes
        them from the documents, every record needing a str document.

        Returns once the server acknowledged them (durable per its durability mode). The
        batch is applied entirely or not at all; raises ``InvalidArgumentError`` /
        ``DimensionMismatchError`` for bad input, ``PayloadTooLargeError`` past the
        server's batch or body limits.
        """
        self._client._run(calls.upsert(self._path, ids, vectors, metadata, documents))

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records for ``ids`` in order (None where absent); vectors as stored, with
        their documents."""
        return self._client._run(calls.get(self._path, ids))

    def delete(self, ids: Sequence[str] | None = None, *, filter: Any = None) -> int:
        """Delete by ``ids`` or by ``filter`` (exactly one); returns how many existed."""
        return self._client._run(calls.delete(self._path, ids, filter))

    def update(
        self,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]],
        *,
        mode: str = "merge",
    ) -> list[str]:
        """Change the metadata of existing records, keeping their vectors, all or nothing
        (as ``Collection.update``: ``mode="merge"`` sets the given keys and removes those
        given as None, ``"replace"`` replaces the whole dict); returns the ids that do not
        exist (they are not created)."""
        return self._client._run(calls.update(self._path, ids, metadata, mode))

    def transaction(self) -> RemoteTransaction:
        """A context manager staging upserts and deletes on the client and sending them
        on exit as one request, applied all or nothing; an exception inside the block
        sends nothing. See :class:`RemoteTransaction`."""
        return RemoteTransaction(self._client, self._path, self.dim)

    def count(self, filter: Any = None) -> int:
        """Live records, or those matching ``filter``."""
        return self._client._run(calls.count(self._path, filter))

    def search(
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
        """The ``k`` nearest records to ``vector``, closest first (see the embedded
        ``Collection.search``); ``with_documents=False`` leaves each hit's document None.
        ``vector`` may be a string when the collection has an embedding function (the
        server embeds it; 400 when it has none)."""
        call = calls.search(self._path, vector, k, ef, filter, exact, with_metadata, with_documents)
        return self._client._run(call)

    def search_batch(
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
        """:meth:`search` for each row of ``vectors`` (or each string of a list of
        strings, embedded by the server), in one request."""
        call = calls.search_batch(
            self._path, vectors, k, ef, filter, exact, with_metadata, with_documents
        )
        return self._client._run(call)

    def text_search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Any = None,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """The ``k`` records whose documents best match ``query`` by BM25 (among those
        matching ``filter``), best first, each with ``score`` (larger = better) and
        ``distance = -score`` (see the embedded ``Collection.text_search``). A document
        is found as soon as its ``upsert`` returned. Raises InvalidArgumentError when
        ``query`` is not a str (before sending) or ``k`` / ``filter`` are invalid."""
        call = calls.text_search(self._path, query, k, filter, with_metadata, with_documents)
        return self._client._run(call)

    def hybrid_search(
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
        """Dense (``vector``) and BM25 (``query``) results fused into one ranking, best
        first, each with its fused ``score`` (see the embedded
        ``Collection.hybrid_search`` for ``fusion``, ``rrf_k`` and ``weights``, checked
        before sending). Without ``vector`` the server's collection must compute it;
        one that cannot answers InvalidArgumentError, as embedded."""
        call = calls.hybrid_search(self._path, query, k, vector, filter, fusion, rrf_k, weights)
        return self._client._run(call)

    def scan(self, filter: Any = None, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of records; pass ``page.next_cursor`` back until it is None."""
        return self._client._run(calls.scan(self._path, filter, limit, cursor))

    def flush(self) -> None:
        """Make every acknowledged write durable on the server."""
        self._client._run(calls.flush(self._path))

    def compact(self) -> CompactionReport:
        """Merge segments and drop deleted rows now; returns what was done."""
        return self._client._run(calls.compact(self._path))

    def stats(self) -> CollectionStats:
        """Counts, segments, memory, disk and WAL bytes."""
        return self._client._run(calls.stats(self._path))

    def info(self) -> CollectionInfo:
        """Current parameters and record count."""
        return self._client._run(calls.info(self._path))

    def __repr__(self) -> str:
        return f"RemoteCollection({self.workspace!r}/{self.name!r} at {self._client.url!r})"


class RemoteTransaction(calls.StagedTransaction):
    """Upserts and deletes staged on the client (:meth:`upsert`, :meth:`delete`, checked
    as they are staged where no data is needed) and sent by :meth:`commit` as one
    request, which the server applies in order, all or nothing (one WAL record).

    As a context manager, the block's normal exit commits; an exception rolls back (sends
    nothing) and propagates. Reads do not see staged writes. Obtained from
    :meth:`RemoteCollection.transaction`.
    """

    def __init__(self, client: Client, path: str, dim: int) -> None:
        super().__init__(path, dim)
        self._client = client

    def commit(self) -> dict[str, int]:
        """Send the staged operations; returns the counts (``upserted``, ``deleted``,
        ``replaced``) as the embedded ``Transaction.commit``. Nothing is sent for an
        empty transaction. Any error (one bad item anywhere) means nothing was applied."""
        call = self._commit_call()
        if call is None:
            return self._empty_counts()
        return self._client._run(call)

    def __enter__(self) -> RemoteTransaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._done:
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
