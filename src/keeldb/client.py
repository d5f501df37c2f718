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

Vectors are sent as base64 of little-endian float32 (see :mod:`keeldb.protocol.wire`).
Connections are kept alive and pooled (:mod:`keeldb.transport`: a minimal HTTP/1.1 client
on the standard library's sockets, a quarter of httpx's CPU per call); a ``Client`` may be
shared by threads. It needs only the base install: nothing from :mod:`keeldb.server`,
FastAPI or httpx (except for a caller's own ``transport=``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from keeldb.errors import InvalidArgumentError, KeelError, RemoteError, error_from_code
from keeldb.protocol import wire
from keeldb.protocol.api import (
    ALL_COLLECTIONS,
    API_KEY_ENV,
    WORKSPACES,
    collection_path,
    workspace_path,
)
from keeldb.transport import HttpxTransport, PooledTransport, Transport
from keeldb.types import (
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    Page,
    Record,
)

__all__ = ["Client", "RemoteCollection"]


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays in metadata (np.int64 years, float32 scores) are common.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _as_matrix(vectors: Any) -> np.ndarray:
    try:
        return np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"vectors: not an array of numbers: {exc}") from exc


def _add_options(body: dict[str, Any], exact: Any, with_metadata: Any) -> None:
    """``exact`` goes on the wire only when True, ``with_metadata`` only when False
    (servers before 0.2 refuse either field, so the defaults keep working with them)."""
    if not isinstance(exact, bool):
        raise InvalidArgumentError(f"exact must be True or False, got {exact!r}")
    if not isinstance(with_metadata, bool):
        raise InvalidArgumentError(f"with_metadata must be True or False, got {with_metadata!r}")
    if exact:
        body["exact"] = True
    if not with_metadata:
        body["with_metadata"] = False


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
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        # Every request body is JSON; one fixed header set for every call.
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": "keeldb-client",
        }
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self.url = url.rstrip("/")
        self._transport: Transport
        if transport is None:
            self._transport = PooledTransport(self.url, headers, timeout_s)
        else:
            self._transport = HttpxTransport(self.url, headers, timeout_s, transport)

    # --- plumbing -----------------------------------------------------------------------

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; return the decoded JSON answer or raise the server's error."""
        data = self._send(method, path, body)
        try:
            return orjson.loads(data)
        except ValueError as exc:
            raise RemoteError(f"{method} {path}: the answer is not JSON") from exc

    def _send(self, method: str, path: str, body: Any = None) -> bytes:
        """Send one request; return a success's body, or raise its error."""
        content = None
        if body is not None:
            try:
                content = json.dumps(body, default=_json_default, allow_nan=False).encode()
            except (TypeError, ValueError) as exc:
                raise InvalidArgumentError(f"request is not JSON serialisable: {exc}") from exc
        status, data = self._transport.request(method, path, content)
        if status >= 400:
            raise self._error(status, data)
        return data

    @staticmethod
    def _error(status: int, data: bytes) -> KeelError:
        try:
            payload = orjson.loads(data)
            code, message = payload["error"], payload["message"]
            if not isinstance(code, str) or not isinstance(message, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            text = data[:200].decode("utf-8", errors="replace")
            return RemoteError(f"HTTP {status}: {text}")
        return error_from_code(code, message)

    # --- the Database API ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``GET /healthz``: ``{"status": "ok", "version": ...}``; raises
        :class:`RemoteError` when the server cannot be reached."""
        result: dict[str, Any] = self._request("GET", "/healthz")
        return result

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        *,
        workspace: str = "default",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        exist_ok: bool = False,
    ) -> RemoteCollection:
        """Create a collection (as ``Database.create_collection``) and return it.

        Raises :class:`~keeldb.errors.AlreadyExistsError` when it exists and ``exist_ok``
        is false (or its parameters differ), :class:`InvalidArgumentError` for bad
        parameters.
        """
        info = self._request(
            "PUT",
            collection_path(name, workspace),
            {
                "dim": dim,
                "metric": metric,
                "m": m,
                "ef_construction": ef_construction,
                "ef_search": ef_search,
                "exist_ok": exist_ok,
            },
        )
        return RemoteCollection(self, wire.info_from_wire(info))

    def get_collection(self, name: str, *, workspace: str = "default") -> RemoteCollection:
        """The named collection; raises :class:`~keeldb.errors.CollectionNotFoundError`."""
        info = self._request("GET", collection_path(name, workspace))
        return RemoteCollection(self, wire.info_from_wire(info))

    def list_collections(self, workspace: str | None = None) -> list[CollectionInfo]:
        """Collections of ``workspace``, or of every workspace the key may see."""
        if workspace is None:
            answer = self._request("GET", ALL_COLLECTIONS)
        else:
            answer = self._request("GET", f"{workspace_path(workspace)}/collections")
        return [wire.info_from_wire(i) for i in answer["collections"]]

    def list_workspaces(self) -> list[str]:
        """Workspaces holding at least one collection (those the key may see)."""
        workspaces: list[str] = self._request("GET", WORKSPACES)["workspaces"]
        return workspaces

    def drop_collection(self, name: str, *, workspace: str = "default") -> None:
        """Drop a collection and its records; raises ``CollectionNotFoundError``."""
        self._request("DELETE", collection_path(name, workspace))

    def metrics(self) -> str:
        """The server's Prometheus text (needs an admin key when keys are on)."""
        return self._send("GET", "/metrics").decode("utf-8")

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
        self._path = collection_path(info.name, info.workspace)

    def _call(self, action: str, body: Any = None) -> Any:
        return self._client._request("POST", f"{self._path}/{action}", body)

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Insert or replace records ``ids[i] -> vectors[i]`` with ``metadata[i]``.

        Returns once the server acknowledged them (durable per its durability mode). The
        batch is applied entirely or not at all; raises ``InvalidArgumentError`` /
        ``DimensionMismatchError`` for bad input, ``PayloadTooLargeError`` past the
        server's batch or body limits.
        """
        body: dict[str, Any] = {
            "ids": list(ids),
            "vectors": wire.encode_array(_as_matrix(vectors)),
        }
        if metadata is not None:
            body["metadata"] = list(metadata)
        self._call("upsert", body)

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records for ``ids`` in order (None where absent); vectors as stored."""
        answer = self._call("get", {"ids": list(ids), "vector_encoding": "base64"})
        return [None if r is None else wire.record_from_wire(r) for r in answer["records"]]

    def delete(
        self, ids: Sequence[str] | None = None, *, filter: dict[str, Any] | None = None
    ) -> int:
        """Delete by ``ids`` or by ``filter`` (exactly one); returns how many existed."""
        body: dict[str, Any] = {}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = filter
        deleted: int = self._call("delete", body)["deleted"]
        return deleted

    def count(self, filter: dict[str, Any] | None = None) -> int:
        """Live records, or those matching ``filter``."""
        n: int = self._call("count", {"filter": filter})["count"]
        return n

    def search(
        self,
        vector: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: dict[str, Any] | None = None,
        exact: bool = False,
        with_metadata: bool = True,
    ) -> list[Hit]:
        """The ``k`` nearest records to ``vector``, closest first (see the embedded
        ``Collection.search``)."""
        body = {
            "vector": wire.encode_array(_as_matrix(vector).reshape(-1)),
            "k": k,
            "ef": ef,
            "filter": filter,
        }
        _add_options(body, exact, with_metadata)
        return [wire.hit_from_wire(h) for h in self._call("search", body)["hits"]]

    def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: dict[str, Any] | None = None,
        exact: bool = False,
        with_metadata: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors``, in one request."""
        body = {
            "vectors": wire.encode_array(_as_matrix(vectors)),
            "k": k,
            "ef": ef,
            "filter": filter,
        }
        _add_options(body, exact, with_metadata)
        results = self._call("search_batch", body)["results"]
        return [[wire.hit_from_wire(h) for h in hits] for hits in results]

    def scan(
        self, filter: dict[str, Any] | None = None, limit: int = 100, cursor: str | None = None
    ) -> Page:
        """One page of records; pass ``page.next_cursor`` back until it is None."""
        body = {"filter": filter, "limit": limit, "cursor": cursor, "vector_encoding": "base64"}
        return wire.page_from_wire(self._call("scan", body))

    def flush(self) -> None:
        """Make every acknowledged write durable on the server."""
        self._call("flush")

    def compact(self) -> CompactionReport:
        """Merge segments and drop deleted rows now; returns what was done."""
        return wire.report_from_wire(self._call("compact"))

    def stats(self) -> CollectionStats:
        """Counts, segments, memory, disk and WAL bytes."""
        return wire.stats_from_wire(self._client._request("GET", f"{self._path}/stats"))

    def info(self) -> CollectionInfo:
        """Current parameters and record count."""
        return wire.info_from_wire(self._client._request("GET", self._path))

    def __repr__(self) -> str:
        return f"RemoteCollection({self.workspace!r}/{self.name!r} at {self._client.url!r})"
