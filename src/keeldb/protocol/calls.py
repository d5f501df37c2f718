"""The client side of every route: what to send, and how to read the answer.

Each function here describes one API call as a :class:`Call`: the HTTP method, the path,
the JSON body, and the function turning the answer's JSON into the value the client method
returns. :class:`keeldb.Client` executes calls over its pooled transport and
:class:`keeldb.AsyncClient` over httpx's async client; both build every request and read
every answer through this module (:func:`encode_body`, :func:`read_answer`), so the two
cannot drift apart. Arguments the embedded API would refuse without looking at data —
collection and workspace names (the engine's own rule, :func:`check_name`), option
types, a transaction's vector shapes — are refused here, before anything is sent, with the
embedded API's error class.

Imports numpy, orjson, the standard library and the engine's validation and value types
(already loaded by ``import keeldb``); nothing from :mod:`keeldb.server`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import numpy as np
import orjson

from keeldb.embeddings.base import EmbeddingFunction
from keeldb.engine.embedder import is_text_batch
from keeldb.engine.hybrid import check_fusion
from keeldb.engine.text_index import analyzer_option
from keeldb.engine.validation import check_name, validate_documents
from keeldb.errors import (
    ClosedError,
    DimensionMismatchError,
    InvalidArgumentError,
    KeelError,
    RemoteError,
    error_from_code,
)
from keeldb.protocol import wire
from keeldb.protocol.api import (
    ALL_COLLECTIONS,
    API_KEY_ENV,
    BACKUP,
    WORKSPACES,
    collection_path,
    workspace_path,
)
from keeldb.text.analyzer import Analyzer
from keeldb.types import (
    BackupReport,
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    Page,
    Record,
)

__all__ = [
    "Call",
    "StagedTransaction",
    "backup",
    "check_url",
    "collection_call",
    "count",
    "create_collection",
    "delete",
    "drop_collection",
    "encode_body",
    "get",
    "get_collection",
    "health",
    "hybrid_search",
    "list_collections",
    "list_workspaces",
    "metrics",
    "read_answer",
    "request_headers",
    "scan",
    "search",
    "search_batch",
    "text_search",
    "update",
    "upsert",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request: ``method path`` with the JSON ``body`` (None: no body), and
    ``decode``, which turns the answer's JSON (its text when ``text``) into the result."""

    method: str
    path: str
    body: Any
    decode: Callable[[Any], T]
    text: bool = False


def _ignore(_answer: Any) -> None:
    return None


# --- client set-up and the two ends of every call ------------------------------------


def check_url(url: str) -> str:
    """``url`` without a trailing slash; InvalidArgumentError unless it is
    ``http(s)://host[:port][/prefix]``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidArgumentError(f"server URL must be http(s)://host[:port], got {url!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise InvalidArgumentError(f"server URL has a bad port: {url!r}") from exc
    return url.rstrip("/")


def request_headers(api_key: str | None) -> dict[str, str]:
    """The headers of every request: JSON both ways, and ``Authorization: Bearer`` with
    ``api_key`` (when None, ``$KEELDB_API_KEY`` if set)."""
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "User-Agent": "keeldb-client",
    }
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays in metadata (np.int64 years, float32 scores) are common.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_body(call: Call[Any]) -> bytes | None:
    """The request body of ``call`` as JSON bytes (None when it has none). Raises
    InvalidArgumentError when a value is not JSON (NaN, infinity, an unknown object)."""
    if call.body is None:
        return None
    try:
        return json.dumps(call.body, default=_json_default, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"request is not JSON serialisable: {exc}") from exc


def _error(status: int, data: bytes) -> KeelError:
    """The exception an error answer stands for: the KeelDB class named by its ``code``,
    or RemoteError when the answer is not a KeelDB error (a proxy's page, say)."""
    try:
        payload = orjson.loads(data)
        code, message = payload["error"], payload["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", errors="replace")
        return RemoteError(f"HTTP {status}: {text}")
    return error_from_code(code, message)


def read_answer(call: Call[T], status: int, data: bytes) -> T:
    """The result of ``call`` from the answer's ``status`` and body, or raise the error
    it carries (RemoteError when a success is not JSON)."""
    if status >= 400:
        raise _error(status, data)
    if call.text:
        return call.decode(data.decode("utf-8", errors="replace"))
    try:
        payload = orjson.loads(data)
    except ValueError as exc:
        raise RemoteError(f"{call.method} {call.path}: the answer is not JSON") from exc
    return call.decode(payload)


# --- arguments ------------------------------------------------------------------------


def _as_matrix(vectors: Any) -> np.ndarray:
    try:
        return np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"vectors: not an array of numbers: {exc}") from exc


def _path(name: str, workspace: str) -> str:
    """The collection's path, once both names pass the engine's rule (so ``"../x"`` or
    ``"x/upsert"`` is an InvalidArgumentError, as embedded, not a 404 or a 405)."""
    check_name(workspace, "workspace")
    check_name(name, "collection")
    return collection_path(name, workspace)


def _options(
    body: dict[str, Any], exact: Any, with_metadata: Any, with_documents: Any = True
) -> dict[str, Any]:
    """``exact`` goes on the wire only when True, ``with_metadata`` and ``with_documents``
    only when False (older servers refuse the fields they do not know, so the defaults
    keep working with them)."""
    if not isinstance(with_documents, bool):
        raise InvalidArgumentError(f"with_documents must be True or False, got {with_documents!r}")
    if not isinstance(exact, bool):
        raise InvalidArgumentError(f"exact must be True or False, got {exact!r}")
    if not isinstance(with_metadata, bool):
        raise InvalidArgumentError(f"with_metadata must be True or False, got {with_metadata!r}")
    if exact:
        body["exact"] = True
    if not with_metadata:
        body["with_metadata"] = False
    if not with_documents:
        body["with_documents"] = False
    return body


def _query(query: Any) -> str:
    """The text query of a full-text or hybrid search (the embedded API's check)."""
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
    return query


# --- the Database API -----------------------------------------------------------------


def health() -> Call[dict[str, Any]]:
    """``GET /healthz``."""
    return Call("GET", "/healthz", None, dict)


def metrics() -> Call[str]:
    """``GET /metrics``: the Prometheus text."""
    return Call("GET", "/metrics", None, str, text=True)


def create_collection(
    name: str,
    dim: int | None,
    metric: str,
    workspace: str,
    m: int,
    ef_construction: int,
    ef_search: int,
    exist_ok: bool,
    embedding: Any = None,
    text: Any = None,
    quantization: str | None = None,
) -> Call[CollectionInfo]:
    """``PUT`` the collection with its parameters; the answer is its info.

    ``embedding`` (an :class:`~keeldb.embeddings.EmbeddingFunction`) goes on the wire as
    its ``{"name", "config"}``: the server re-creates it through its own registry.
    ``dim`` None is sent only with an embedding function (the server takes its dim).
    ``text`` (an :class:`~keeldb.text.Analyzer` or a dict of its options) goes as a dict.
    ``quantization`` is sent only when given, so older servers still accept the call.
    """
    body: dict[str, Any] = {
        "metric": metric,
        "m": m,
        "ef_construction": ef_construction,
        "ef_search": ef_search,
        "exist_ok": exist_ok,
    }
    if embedding is not None:
        body["embedding"] = _embedding_spec(embedding)
        if dim is not None and dim != embedding.dim:
            raise InvalidArgumentError(
                f"dim {dim!r} differs from the embedding function's dim {embedding.dim}"
            )
    elif dim is None:
        raise InvalidArgumentError("create_collection needs dim (or an embedding function)")
    if dim is not None:
        body["dim"] = dim
    if text is not None:
        body["text"] = analyzer_option(text).config()
    if quantization is not None:
        body["quantization"] = quantization
    return Call("PUT", _path(name, workspace), body, wire.info_from_wire)


def analyzer_of_info(config: dict[str, Any] | None) -> Analyzer:
    """A remote collection's analyser from its info's ``analyzer`` config (the default
    analyser when a server does not send one)."""
    return Analyzer() if config is None else Analyzer.from_config(config)


def _embedding_spec(fn: Any) -> dict[str, Any]:
    """``{"name", "config"}`` of an embedding function, for the server's registry (the
    name need not be registered in the client's process: the server's registry decides,
    answering 400 for an unknown one)."""
    if not isinstance(fn, EmbeddingFunction):
        raise InvalidArgumentError(
            f"embedding must be a keeldb.embeddings.EmbeddingFunction, got {type(fn).__name__}"
        )
    config = fn.config()
    if not isinstance(config, dict):
        raise InvalidArgumentError(f"config() of embedding function {fn.name!r} is not a dict")
    return {"name": fn.name, "config": config}


def get_collection(name: str, workspace: str) -> Call[CollectionInfo]:
    """``GET`` the collection's info (404 ``collection_not_found`` if absent)."""
    return Call("GET", _path(name, workspace), None, wire.info_from_wire)


def list_collections(workspace: str | None) -> Call[list[CollectionInfo]]:
    """The collections of ``workspace``, or of every workspace the key may see."""
    if workspace is None:
        path = ALL_COLLECTIONS
    else:
        path = f"{workspace_path(check_name(workspace, 'workspace'))}/collections"
    return Call("GET", path, None, lambda a: [wire.info_from_wire(i) for i in a["collections"]])


def list_workspaces() -> Call[list[str]]:
    """Workspaces holding at least one collection (those the key may see)."""
    return Call("GET", WORKSPACES, None, lambda a: list(a["workspaces"]))


def drop_collection(name: str, workspace: str) -> Call[None]:
    """``DELETE`` the collection."""
    return Call("DELETE", _path(name, workspace), None, _ignore)


def backup(name: str | None) -> Call[BackupReport]:
    """``POST /v1/backup``: a backup named ``name`` (None: the server picks a name) in the
    server's backup directory."""
    if name is not None:
        check_name(name, "backup")
    return Call("POST", BACKUP, {"name": name}, lambda a: BackupReport(**a))


# --- the Collection API ---------------------------------------------------------------


def collection_call(path: str, action: str, body: Any, decode: Callable[[Any], T]) -> Call[T]:
    """``POST`` to the collection route ``action`` under the collection ``path``."""
    return Call("POST", f"{path}/{action}", body, decode)


def upsert(
    path: str,
    ids: Sequence[str],
    vectors: Any,
    metadata: Sequence[dict[str, Any] | None] | None,
    documents: Sequence[str | None] | None = None,
) -> Call[None]:
    """Insert or replace records (vectors as an encoded float32 array; ``documents``
    sent only when given, checked first with the engine's rule)."""
    body = _upsert_body(ids, vectors, metadata, documents)
    return collection_call(path, "upsert", body, _ignore)


def _upsert_body(
    ids: Sequence[str],
    vectors: Any,
    metadata: Sequence[dict[str, Any] | None] | None,
    documents: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The body of an upsert; ``vectors`` None (the server's embedding function computes
    them from the documents) leaves the field out, and then every record needs a
    document (checked before sending, as embedded)."""
    id_list = list(ids)
    body: dict[str, Any] = {"ids": id_list}
    if vectors is None:
        docs = validate_documents(documents, len(id_list))
        if id_list and (docs is None or any(d is None for d in docs)):
            raise InvalidArgumentError(
                "upsert without vectors needs a str document for every record "
                "(the collection's embedding function computes the vectors from them)"
            )
    else:
        body["vectors"] = wire.encode_array(_as_matrix(vectors))
    if metadata is not None:
        body["metadata"] = list(metadata)
    if documents is not None:
        body["documents"] = validate_documents(documents, len(id_list))
    return body


def get(path: str, ids: Sequence[str]) -> Call[list[Record | None]]:
    """Records by id (vectors asked for as base64)."""
    return collection_call(
        path,
        "get",
        {"ids": list(ids), "vector_encoding": "base64"},
        lambda a: [None if r is None else wire.record_from_wire(r) for r in a["records"]],
    )


def delete(path: str, ids: Sequence[str] | None, filter: dict[str, Any] | None) -> Call[int]:
    """Delete by ids or by filter; the answer is how many existed."""
    body: dict[str, Any] = {}
    if ids is not None:
        body["ids"] = list(ids)
    if filter is not None:
        body["filter"] = filter
    return collection_call(path, "delete", body, lambda a: int(a["deleted"]))


def update(
    path: str, ids: Sequence[str], metadata: Sequence[dict[str, Any]], mode: str
) -> Call[list[str]]:
    """Change metadata only; the answer lists the ids that do not exist."""
    body = {"ids": list(ids), "metadata": list(metadata), "mode": mode}
    return collection_call(path, "update", body, lambda a: list(a["missing"]))


def count(path: str, filter: dict[str, Any] | None) -> Call[int]:
    """Live records (matching ``filter``)."""
    return collection_call(path, "count", {"filter": filter}, lambda a: int(a["count"]))


def search(
    path: str,
    vector: Any,
    k: int,
    ef: int | None,
    filter: dict[str, Any] | None,
    exact: bool,
    with_metadata: bool,
    with_documents: bool = True,
) -> Call[list[Hit]]:
    """The ``k`` nearest records to one vector, or to a string query (sent as is: the
    server's embedding function embeds it)."""
    query = vector if isinstance(vector, str) else wire.encode_array(_as_matrix(vector).reshape(-1))
    body = {
        "vector": query,
        "k": k,
        "ef": ef,
        "filter": filter,
    }
    return collection_call(
        path,
        "search",
        _options(body, exact, with_metadata, with_documents),
        _hits,
    )


def _hits(answer: Any) -> list[Hit]:
    return [wire.hit_from_wire(h) for h in answer["hits"]]


def search_batch(
    path: str,
    vectors: Any,
    k: int,
    ef: int | None,
    filter: dict[str, Any] | None,
    exact: bool,
    with_metadata: bool,
    with_documents: bool = True,
) -> Call[list[list[Hit]]]:
    """One hit list per row of ``vectors`` (or per string of a non-empty list of
    strings, sent as is for the server's embedding function), in one request."""
    queries = list(vectors) if is_text_batch(vectors) else wire.encode_array(_as_matrix(vectors))
    body = {"vectors": queries, "k": k, "ef": ef, "filter": filter}
    return collection_call(
        path,
        "search_batch",
        _options(body, exact, with_metadata, with_documents),
        lambda a: [[wire.hit_from_wire(h) for h in hits] for hits in a["results"]],
    )


def text_search(
    path: str,
    query: str,
    k: int,
    filter: dict[str, Any] | None,
    with_metadata: bool,
    with_documents: bool,
) -> Call[list[Hit]]:
    """The ``k`` best records for ``query`` by BM25 over their documents."""
    body = {"query": _query(query), "k": k, "filter": filter}
    return collection_call(
        path, "text_search", _options(body, False, with_metadata, with_documents), _hits
    )


def hybrid_search(
    path: str,
    query: str,
    k: int,
    vector: Any,
    filter: dict[str, Any] | None,
    fusion: str,
    rrf_k: float | None,
    weights: Sequence[float] | None,
) -> Call[list[Hit]]:
    """Dense and BM25 candidates for one query, fused (``vector`` None: the server's
    collection must compute it, and refuses with InvalidArgumentError when it cannot).
    The fusion arguments are checked here with the engine's rule."""
    body: dict[str, Any] = {"query": _query(query), "k": k, "filter": filter, "fusion": fusion}
    checked = check_fusion(fusion, rrf_k, weights)
    if vector is not None:
        body["vector"] = wire.encode_array(_as_matrix(vector).reshape(-1))
    if rrf_k is not None:
        body["rrf_k"] = rrf_k
    if checked is not None:
        body["weights"] = checked
    return collection_call(path, "hybrid_search", body, _hits)


def scan(path: str, filter: dict[str, Any] | None, limit: int, cursor: str | None) -> Call[Page]:
    """One page of records."""
    body = {"filter": filter, "limit": limit, "cursor": cursor, "vector_encoding": "base64"}
    return collection_call(path, "scan", body, wire.page_from_wire)


def flush(path: str) -> Call[None]:
    """Make every acknowledged write durable."""
    return collection_call(path, "flush", None, _ignore)


def compact(path: str) -> Call[CompactionReport]:
    """Merge segments and drop deleted rows now."""
    return collection_call(path, "compact", None, wire.report_from_wire)


def stats(path: str) -> Call[CollectionStats]:
    """``GET`` the collection's stats."""
    return Call("GET", f"{path}/stats", None, wire.stats_from_wire)


def info(path: str) -> Call[CollectionInfo]:
    """``GET`` the collection's current info."""
    return Call("GET", path, None, wire.info_from_wire)


# --- transactions ---------------------------------------------------------------------

_EMPTY_COUNTS = {"upserted": 0, "deleted": 0, "replaced": 0}


class StagedTransaction:
    """Upserts and deletes staged on the client, to be sent as one ``transaction``
    request (the server applies them in order, all or nothing).

    What can be checked without the server's data is checked when an operation is staged,
    raising the embedded API's error at the call: ids a list of strings, vectors a
    2-d array of finite numbers of the collection's dimension with one row per id,
    metadata aligned with ids and JSON-serialisable. The rest (an id too long, a zero
    vector under cosine, ...) is the server's validation, for the whole transaction before
    anything is applied. Subclassed by the sync and async clients, which send it.
    """

    def __init__(self, path: str, dim: int) -> None:
        self._path = path
        self._dim = dim
        self._ops: list[dict[str, Any]] = []
        self._done = False

    def _check(self) -> None:
        if self._done:
            raise ClosedError("this transaction was already committed or rolled back")

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """Stage an upsert (same contract as :meth:`Collection.upsert`; ``vectors`` None:
        the server's embedding function computes them from ``documents``)."""
        self._check()
        id_list = _id_list(ids)
        if vectors is None:  # computed on the server from the documents
            if metadata is not None and len(metadata) != len(id_list):
                raise InvalidArgumentError(f"got {len(id_list)} ids but {len(metadata)} metadata")
            if not id_list:
                return
            self._stage({"op": "upsert", **_upsert_body(id_list, None, metadata, documents)})
            return
        matrix = _as_matrix(vectors)
        if matrix.size == 0 and not id_list:
            matrix = matrix.reshape(0, self._dim)
        if matrix.ndim != 2:
            raise InvalidArgumentError(
                f"vectors must be 2-dimensional (n, {self._dim}), got shape {matrix.shape}"
            )
        if matrix.shape[1] != self._dim:
            raise DimensionMismatchError(
                f"vectors have dimension {matrix.shape[1]}, collection has {self._dim}"
            )
        if matrix.shape[0] != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {matrix.shape[0]} vectors")
        if not np.isfinite(matrix).all():
            raise InvalidArgumentError("vectors contain NaN or infinity")
        if metadata is not None and len(metadata) != len(id_list):
            raise InvalidArgumentError(f"got {len(id_list)} ids but {len(metadata)} metadata")
        validate_documents(documents, len(id_list))
        if not id_list:
            return  # an empty batch is a no-op, as embedded
        self._stage({"op": "upsert", **_upsert_body(id_list, matrix, metadata, documents)})

    def _stage(self, op: dict[str, Any]) -> None:
        encode_body(Call("POST", "", op, _ignore))  # not JSON: refused now, not at commit
        self._ops.append(op)

    def delete(self, ids: Sequence[str]) -> None:
        """Stage a delete by ids."""
        self._check()
        self._ops.append({"op": "delete", "ids": _id_list(ids)})

    def rollback(self) -> None:
        """Discard every staged operation (nothing was sent)."""
        self._done = True
        self._ops = []

    def _commit_call(self) -> Call[dict[str, int]] | None:
        """The request applying the staged operations (None when there are none: an empty
        transaction sends nothing); the transaction is finished either way."""
        self._check()
        self._done = True
        ops, self._ops = self._ops, []
        if not ops:
            return None
        return collection_call(
            self._path, "transaction", {"ops": ops}, lambda a: {k: int(a[k]) for k in a}
        )

    @staticmethod
    def _empty_counts() -> dict[str, int]:
        return dict(_EMPTY_COUNTS)


def _id_list(ids: Any) -> list[str]:
    if isinstance(ids, str) or not isinstance(ids, Sequence | np.ndarray):
        raise InvalidArgumentError(f"ids must be a list of strings, got {type(ids).__name__}")
    out = [i.item() if isinstance(i, np.str_) else i for i in ids]
    for n, i in enumerate(out):
        if not isinstance(i, str):
            raise InvalidArgumentError(f"ids[{n}] must be a string, got {type(i).__name__}")
    return out
