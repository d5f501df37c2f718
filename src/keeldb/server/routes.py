"""The routes of the HTTP API, one per embedded-API method (see docs/server.md).

Each route is added by its own small function (:data:`API_ROUTES`, in matching order).
Each handler checks limits on the parsed body, then does everything else — decoding
vectors, the engine call, encoding the answer — in one worker-pool hop.
"""

from __future__ import annotations

import inspect
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from keeldb._version import __version__
from keeldb.embeddings.base import from_config
from keeldb.engine.validation import check_name
from keeldb.errors import (
    AlreadyExistsError,
    AuthError,
    BusyError,
    ClosedError,
    CollectionNotFoundError,
    DatabaseLockedError,
    InvalidArgumentError,
    KeelError,
    PayloadTooLargeError,
    PermissionDeniedError,
    translate_os_error,
)
from keeldb.protocol import wire
from keeldb.protocol.api import ALL_COLLECTIONS, BACKUP, COLLECTION, WORKSPACE, WORKSPACES
from keeldb.server.limits import (
    check_batch,
    check_count,
    check_ef,
    check_filter,
    check_k,
    check_query_batch,
)
from keeldb.server.marks import collection_body, public, requires
from keeldb.server.metrics import render
from keeldb.server.models import (
    BackupReportModel,
    BackupRequest,
    CollectionInfoModel,
    CompactionReportModel,
    CountRequest,
    CountResponse,
    CreateCollectionRequest,
    DeleteRequest,
    DeleteResponse,
    DroppedResponse,
    ErrorResponse,
    GetRequest,
    GetResponse,
    HealthResponse,
    HybridSearchRequest,
    ListCollectionsResponse,
    ListWorkspacesResponse,
    OkResponse,
    ScanRequest,
    ScanResponse,
    SearchBatchRequest,
    SearchBatchResponse,
    SearchRequest,
    SearchResponse,
    StatsModel,
    TextSearchRequest,
    TransactionDelete,
    TransactionRequest,
    TransactionResponse,
    TransactionUpsert,
    UpdateRequest,
    UpdateResponse,
    UpsertRequest,
    UpsertResponse,
)
from keeldb.server.state import ServerState

__all__ = ["API_ROUTES", "add_api_routes", "add_open_routes"]


def _errors(*classes: type[KeelError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error statuses a route can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    base: tuple[type[KeelError], ...] = (InvalidArgumentError, AuthError, PermissionDeniedError)
    for cls in (*base, *classes):
        entry = out.setdefault(cls.status, {"model": ErrorResponse, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], cls.code]))
    return out


# What any route touching a collection may answer besides success.
COLLECTION_ERRORS = _errors(
    CollectionNotFoundError, PayloadTooLargeError, ClosedError, BusyError, DatabaseLockedError
)


def _search(router: APIRouter, state: ServerState) -> None:
    cfg = state.config

    @router.post(COLLECTION + "/search", response_model=SearchResponse, responses=COLLECTION_ERRORS)
    @requires("read")
    @collection_body(SearchRequest)
    async def search(ws: str, name: str, body: SearchRequest) -> Response:
        """The ``k`` nearest records to ``vector`` (optionally among those matching
        ``filter``), closest first."""
        check_k(body.k, cfg)
        check_ef(body.ef, cfg)
        check_filter(body.filter, cfg)

        def work() -> dict[str, Any]:
            query = body.vector
            vector = query if isinstance(query, str) else wire.decode_vector(_plain(query))
            col = state.collection(ws, name)
            hits = col.search(vector, **_search_options(body, col))
            return {"hits": [wire.hit_to_wire(h) for h in hits]}

        return await state.run_json(work)


def _search_batch(router: APIRouter, state: ServerState) -> None:
    cfg = state.config

    @router.post(
        COLLECTION + "/search_batch",
        response_model=SearchBatchResponse,
        responses=COLLECTION_ERRORS,
    )
    @requires("read")
    @collection_body(SearchBatchRequest)
    async def search_batch(ws: str, name: str, body: SearchBatchRequest) -> Response:
        """:meth:`search` for many query vectors at once; one hit list per query."""
        check_k(body.k, cfg)
        check_ef(body.ef, cfg)
        check_filter(body.filter, cfg)

        def work() -> dict[str, Any]:
            queries = body.vectors
            if _is_text_batch(queries):
                vectors: Any = list(queries)  # the collection's embedding function embeds them
                check_query_batch(len(vectors), cfg)
            else:
                vectors = wire.decode_vectors(_plain(queries))
                check_query_batch(vectors.shape[0], cfg)
            col = state.collection(ws, name)
            results = col.search_batch(vectors, **_search_options(body, col))
            return {"results": [[wire.hit_to_wire(h) for h in hits] for hits in results]}

        return await state.run_json(work)


def _text_search(router: APIRouter, state: ServerState) -> None:
    cfg = state.config

    @router.post(
        COLLECTION + "/text_search", response_model=SearchResponse, responses=COLLECTION_ERRORS
    )
    @requires("read")
    @collection_body(TextSearchRequest)
    async def text_search(ws: str, name: str, body: TextSearchRequest) -> Response:
        """The ``k`` records whose documents best match ``query`` by BM25 (optionally
        among those matching ``filter``), best first; each hit's ``score`` is its BM25
        score and ``distance`` its negation. Statistics cover every live document, so a
        document is found as soon as its upsert was acknowledged."""
        check_k(body.k, cfg)
        check_filter(body.filter, cfg)

        def work() -> dict[str, Any]:
            hits = _text_method(state.collection(ws, name), "text_search")(
                body.query,
                body.k,
                filter=body.filter,
                with_metadata=body.with_metadata,
                with_documents=body.with_documents,
            )
            return {"hits": [wire.hit_to_wire(h) for h in hits]}

        return await state.run_json(work)


def _hybrid_search(router: APIRouter, state: ServerState) -> None:
    cfg = state.config

    @router.post(
        COLLECTION + "/hybrid_search", response_model=SearchResponse, responses=COLLECTION_ERRORS
    )
    @requires("read")
    @collection_body(HybridSearchRequest)
    async def hybrid_search(ws: str, name: str, body: HybridSearchRequest) -> Response:
        """Dense (``vector``) and BM25 (``query``) candidates, both restricted by
        ``filter``, fused by reciprocal rank (``fusion="rrf"``) or normalised weighted
        scores (``"weighted"``); each hit's ``score`` is its fused score. Without
        ``vector`` the collection must compute it (400 ``invalid_argument`` when it
        cannot)."""
        check_k(body.k, cfg)
        check_filter(body.filter, cfg)

        def work() -> dict[str, Any]:
            vector = None if body.vector is None else wire.decode_vector(_plain(body.vector))
            hits = _text_method(state.collection(ws, name), "hybrid_search")(
                body.query,
                body.k,
                vector=vector,
                filter=body.filter,
                fusion=body.fusion,
                rrf_k=body.rrf_k,
                weights=body.weights,
            )
            return {"hits": [wire.hit_to_wire(h) for h in hits]}

        return await state.run_json(work)


def _upsert(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/upsert", response_model=UpsertResponse, responses=COLLECTION_ERRORS)
    @requires("write")
    @collection_body(UpsertRequest)
    async def upsert(ws: str, name: str, body: UpsertRequest) -> Response:
        """Insert or replace records; returns when they are durable per the server's
        durability mode. The whole batch is validated before anything is applied."""
        check_batch(body.ids, state.config)

        def work() -> dict[str, Any]:
            vectors = _upsert_vectors(body)
            col = state.collection(ws, name)
            col.upsert(body.ids, vectors, body.metadata, **_documents(col, body.documents))
            return {"upserted": len(body.ids)}

        return await state.run_json(work, "write")


def _upsert_vectors(body: UpsertRequest | TransactionUpsert) -> Any:
    """The decoded vectors of an upsert, once they and the metadata match the ids (None
    when the request has none: the collection's embedding function computes them from
    the documents)."""
    if body.metadata is not None and len(body.metadata) != len(body.ids):
        raise InvalidArgumentError(
            f"metadata has {len(body.metadata)} entries for {len(body.ids)} ids"
        )
    if body.vectors is None:
        return None
    vectors = wire.decode_vectors(_plain(body.vectors))
    if vectors.shape[0] != len(body.ids):
        raise InvalidArgumentError(f"vectors has {vectors.shape[0]} rows for {len(body.ids)} ids")
    return vectors


def _update(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/update", response_model=UpdateResponse, responses=COLLECTION_ERRORS)
    @requires("write")
    @collection_body(UpdateRequest)
    async def update(ws: str, name: str, body: UpdateRequest) -> Response:
        """Change the metadata of existing records, keeping their vectors, all or nothing:
        ``merge`` (default) sets the given keys and removes those given as null,
        ``replace`` makes each record's metadata the given object. Ids that do not exist
        are not created: they come back in ``missing``."""
        check_batch(body.ids, state.config)

        def work() -> dict[str, Any]:
            col = state.collection(ws, name)
            return {"missing": col.update(body.ids, body.metadata, mode=body.mode)}

        return await state.run_json(work, "write")


def _transaction(router: APIRouter, state: ServerState) -> None:
    @router.post(
        COLLECTION + "/transaction", response_model=TransactionResponse, responses=COLLECTION_ERRORS
    )
    @requires("write")
    @collection_body(TransactionRequest)
    async def transaction(ws: str, name: str, body: TransactionRequest) -> Response:
        """Apply ``ops`` (upserts and deletes by ids) in order as one atomic write, as the
        embedded ``col.transaction()``: every op is validated first, and any error (its
        message starting ``ops[i]``) means nothing was applied. The ids of all ops count
        against the batch limit together."""
        check_count(sum(len(op.ids) for op in body.ops), state.config, "ids (all ops)")
        check_count(len(body.ops), state.config, "ops")

        def work() -> dict[str, Any]:
            col = state.collection(ws, name)
            tx = col.transaction()
            for i, op in enumerate(body.ops):
                try:
                    if isinstance(op, TransactionDelete):
                        tx.delete(op.ids)
                        continue
                    vectors = _upsert_vectors(op)
                    if op.ids:  # an empty upsert is a no-op, whatever its vectors' width
                        tx.upsert(op.ids, vectors, op.metadata, **_documents(col, op.documents))
                except InvalidArgumentError as exc:
                    tx.rollback()
                    raise _at_op(exc, i) from exc
                except BaseException:
                    tx.rollback()
                    raise
            counts: dict[str, Any] = tx.commit()
            return counts

        return await state.run_json(work, "write")


def _at_op(exc: InvalidArgumentError, index: int) -> InvalidArgumentError:
    """``exc`` again (same class), its message saying which op of a transaction it is
    about."""
    return type(exc)(f"ops[{index}]: {exc.message}")


def _get(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/get", response_model=GetResponse, responses=COLLECTION_ERRORS)
    @requires("read")
    @collection_body(GetRequest)
    async def get(ws: str, name: str, body: GetRequest) -> Response:
        """Records by id, in request order; null for an id that is absent."""
        check_batch(body.ids, state.config)
        enc = body.vector_encoding

        def work() -> dict[str, Any]:
            records = state.collection(ws, name).get(body.ids)
            return {
                "records": [None if r is None else wire.record_to_wire(r, enc) for r in records]
            }

        return await state.run_json(work)


def _count(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/count", response_model=CountResponse, responses=COLLECTION_ERRORS)
    @requires("read")
    @collection_body(CountRequest, optional=True)
    async def count(ws: str, name: str, body: CountRequest | None = None) -> Response:
        """Live records, or those matching ``filter``."""
        flt = body.filter if body is not None else None
        check_filter(flt, state.config)
        return await state.run_json(lambda: {"count": state.collection(ws, name).count(filter=flt)})


def _delete(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/delete", response_model=DeleteResponse, responses=COLLECTION_ERRORS)
    @requires("write")
    @collection_body(DeleteRequest)
    async def delete(ws: str, name: str, body: DeleteRequest) -> Response:
        """Delete by ``ids`` or by ``filter`` (exactly one); returns how many existed."""
        if (body.ids is None) == (body.filter is None):
            raise InvalidArgumentError("delete takes exactly one of 'ids' or 'filter'")
        if body.ids is not None:
            check_batch(body.ids, state.config)
        check_filter(body.filter, state.config)
        return await state.run_json(
            lambda: {
                "deleted": state.collection(ws, name).delete(ids=body.ids, filter=body.filter)
            },
            "write",
        )


def _scan(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/scan", response_model=ScanResponse, responses=COLLECTION_ERRORS)
    @requires("read")
    @collection_body(ScanRequest, optional=True)
    async def scan(ws: str, name: str, body: ScanRequest | None = None) -> Response:
        """One page of records (optionally matching ``filter``); pass ``next_cursor``
        back as ``cursor`` for the next page, until it is null."""
        req = body or ScanRequest()
        if req.limit < 1:
            raise InvalidArgumentError(f"limit must be at least 1, got {req.limit}")
        check_count(req.limit, state.config, "records (scan limit)")
        check_filter(req.filter, state.config)

        def work() -> dict[str, Any]:
            col = state.collection(ws, name)
            page = col.scan(filter=req.filter, limit=req.limit, cursor=req.cursor)
            return {
                "records": [wire.record_to_wire(r, req.vector_encoding) for r in page.records],
                "next_cursor": page.next_cursor,
            }

        return await state.run_json(work)


def _list_workspaces(router: APIRouter, state: ServerState) -> None:
    @router.get(WORKSPACES, response_model=ListWorkspacesResponse, responses=_errors())
    @requires(None)
    async def list_workspaces(request: Request) -> Response:
        """Workspaces holding at least one collection (only those the key may see)."""
        api_key = request.state.api_key

        def work() -> dict[str, Any]:
            names = state.db.list_workspaces()
            if api_key is not None:
                names = [w for w in names if api_key.sees_workspace(w)]
            return {"workspaces": names}

        return await state.run_json(work)


def _list_all_collections(router: APIRouter, state: ServerState) -> None:
    @router.get(ALL_COLLECTIONS, response_model=ListCollectionsResponse, responses=_errors())
    @requires(None)
    async def list_all_collections(request: Request) -> Response:
        """Collections of every workspace (only those the key may see)."""
        api_key = request.state.api_key

        def work() -> dict[str, Any]:
            infos = state.db.list_collections()
            if api_key is not None:
                infos = [i for i in infos if api_key.sees_workspace(i.workspace)]
            return {"collections": [wire.info_to_wire(i) for i in infos]}

        return await state.run_json(work)


def _list_collections(router: APIRouter, state: ServerState) -> None:
    @router.get(
        WORKSPACE + "/collections",
        response_model=ListCollectionsResponse,
        responses=_errors(),
    )
    @requires("read")
    async def list_collections(ws: str) -> Response:
        """Every collection in workspace ``ws`` (an empty list if it has none)."""
        return await state.run_json(
            lambda: {"collections": [wire.info_to_wire(i) for i in state.db.list_collections(ws)]}
        )


def _create_collection(router: APIRouter, state: ServerState) -> None:
    @router.put(
        COLLECTION,
        response_model=CollectionInfoModel,
        responses=_errors(AlreadyExistsError, ClosedError, DatabaseLockedError),
    )
    @requires("write")
    async def create_collection(ws: str, name: str, body: CreateCollectionRequest) -> Response:
        """Create collection ``name`` (``exist_ok``: return the existing one when its
        parameters match; 409 ``already_exists`` otherwise). ``embedding`` names an
        embedding function of the server's registry (400 when unknown or unavailable);
        ``text`` is the full-text analyser's options."""

        def work() -> dict[str, Any]:
            col = state.db.create_collection(
                name,
                dim=body.dim,
                **_text_options(state.db, body),
                metric=body.metric,
                workspace=ws,
                m=body.m,
                ef_construction=body.ef_construction,
                ef_search=body.ef_search,
                exist_ok=body.exist_ok,
                quantization=body.quantization,
            )
            return wire.info_to_wire(col.info())

        return await state.run_json(work, "write")


def _get_collection(router: APIRouter, state: ServerState) -> None:
    @router.get(COLLECTION, response_model=CollectionInfoModel, responses=COLLECTION_ERRORS)
    @requires("read")
    async def get_collection(ws: str, name: str) -> Response:
        """The collection's parameters and record count (404 if absent)."""
        return await state.run_json(lambda: wire.info_to_wire(state.collection(ws, name).info()))


def _drop_collection(router: APIRouter, state: ServerState) -> None:
    @router.delete(COLLECTION, response_model=DroppedResponse, responses=COLLECTION_ERRORS)
    @requires("write")
    async def drop_collection(ws: str, name: str) -> Response:
        """Drop the collection and all its records (404 if absent)."""

        def work() -> dict[str, Any]:
            state.db.drop_collection(name, workspace=ws)
            return {"dropped": True}

        return await state.run_json(work, "write")


def _stats(router: APIRouter, state: ServerState) -> None:
    @router.get(COLLECTION + "/stats", response_model=StatsModel, responses=COLLECTION_ERRORS)
    @requires("read")
    async def stats(ws: str, name: str) -> Response:
        """Counts, segments, memory, disk and WAL bytes."""
        return await state.run_json(lambda: wire.stats_to_wire(state.collection(ws, name).stats()))


def _compact(router: APIRouter, state: ServerState) -> None:
    @router.post(
        COLLECTION + "/compact", response_model=CompactionReportModel, responses=COLLECTION_ERRORS
    )
    @requires("write")
    async def compact(ws: str, name: str) -> Response:
        """Merge segments and drop deleted rows now; returns what was done."""
        return await state.run_json(
            lambda: wire.report_to_wire(state.collection(ws, name).compact()), "write"
        )


def _flush(router: APIRouter, state: ServerState) -> None:
    @router.post(COLLECTION + "/flush", response_model=OkResponse, responses=COLLECTION_ERRORS)
    @requires("write")
    async def flush(ws: str, name: str) -> Response:
        """Make every acknowledged write durable (matters under durability 'flush'/'none')."""

        def work() -> dict[str, Any]:
            state.collection(ws, name).flush()
            return {"ok": True}

        return await state.run_json(work, "write")


def _backup(router: APIRouter, state: ServerState) -> None:
    @router.post(
        BACKUP,
        response_model=BackupReportModel,
        responses=_errors(AlreadyExistsError, ClosedError, DatabaseLockedError),
    )
    @requires("admin")
    async def backup(body: BackupRequest | None = None) -> Response:
        """Back up the whole database (``db.backup``, online: writers go on) into
        ``name`` under the server's ``--backup-dir``; the client never chooses a path.
        400 when the server has no backup directory, 409 when ``name`` exists."""
        root = state.config.backup_dir
        if root is None:
            raise InvalidArgumentError(
                "this server takes no backups over HTTP: start it with --backup-dir DIR"
            )
        name = body.name if body is not None and body.name is not None else _backup_name()
        check_name(name, "backup")

        def work() -> dict[str, Any]:
            try:
                os.makedirs(root, exist_ok=True)
            except OSError as exc:
                raise translate_os_error(exc, f"creating the backup directory {root}") from exc
            return asdict(state.db.backup(os.path.join(root, name)))

        return await state.run_json(work, "write")


def _backup_name() -> str:
    """``backup-<UTC time>-<random>``: sorts by time, never collides in practice."""
    return f"backup-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


# The /v1 routes in the order they are matched (and listed in /openapi.json): the hot
# collection routes first.
API_ROUTES: tuple[Callable[[APIRouter, ServerState], None], ...] = (
    _search,
    _search_batch,
    _text_search,
    _hybrid_search,
    _upsert,
    _get,
    _count,
    _delete,
    _scan,
    _update,
    _transaction,
    _list_workspaces,
    _list_all_collections,
    _list_collections,
    _create_collection,
    _get_collection,
    _drop_collection,
    _stats,
    _compact,
    _flush,
    _backup,
)


def add_api_routes(router: APIRouter, state: ServerState) -> None:
    """Add the /v1 routes (:data:`API_ROUTES`), bound to ``state``, to ``router`` (whose
    route class must be :class:`~keeldb.server.app.KeelRoute`)."""
    for add_route in API_ROUTES:
        add_route(router, state)


def add_open_routes(router: APIRouter, state: ServerState) -> None:
    """Add ``/healthz`` (no key needed), ``/metrics`` (admin key when keys are on), and
    ``/openapi.json`` (any valid key when keys are on, unless ``public_docs``) to
    ``router``. ``/docs`` and ``/redoc`` are in :mod:`keeldb.server.dashboard`."""
    docs_access = public if state.config.public_docs else requires(None)

    async def openapi_schema(request: Request) -> JSONResponse:
        """The OpenAPI schema of this API."""
        return JSONResponse(request.app.openapi())

    router.add_api_route("/openapi.json", docs_access(openapi_schema), include_in_schema=False)

    @router.get("/healthz", response_model=HealthResponse)
    @public
    async def healthz() -> dict[str, str]:
        """Liveness: answers while the server accepts requests. Needs no key."""
        return {"status": "ok", "version": __version__}

    @router.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={**_errors(), 200: {"content": {"text/plain": {}}}},
    )
    @requires("admin")
    async def metrics() -> Response:
        """Prometheus text: request counts and latencies, collection sizes, WAL bytes."""
        gauges = await state.run(state.collection_gauges)
        return PlainTextResponse(
            render(state.metrics, gauges), media_type="text/plain; version=0.0.4"
        )


def _text_options(db: Any, body: CreateCollectionRequest) -> dict[str, Any]:
    """The ``embedding=`` / ``text=`` keywords of ``create_collection`` in ``body`` (only
    those given: a sharded database takes neither, and answers 400 when asked), the
    embedding function re-created by the server's registry."""
    options: dict[str, Any] = {}
    if body.embedding is not None:
        options["embedding"] = from_config(body.embedding.name, body.embedding.config)
    if body.text is not None:
        options["text"] = body.text
    if options and "embedding" not in inspect.signature(db.create_collection).parameters:
        raise _no_documents("embedding and text")
    return options


def _is_text_batch(queries: Any) -> bool:
    """Whether a search_batch request's ``vectors`` is a list of string queries."""
    return isinstance(queries, list) and len(queries) > 0 and isinstance(queries[0], str)


def _plain(value: Any) -> Any:
    """A pydantic-parsed vector field back as plain data for :mod:`wire` to decode."""
    return value.model_dump() if hasattr(value, "model_dump") else value


def _search_options(body: SearchRequest | SearchBatchRequest, col: Any) -> dict[str, Any]:
    """The keyword arguments of ``col.search`` / ``search_batch`` in ``body``
    (``with_documents`` only when false and ``col`` has documents: a collection without
    them — one of a sharded database — takes no such argument, and its hits carry none
    anyway)."""
    options = {
        "k": body.k,
        "ef": body.ef,
        "filter": body.filter,
        "exact": body.exact,
        "with_metadata": body.with_metadata,
    }
    if not body.with_documents and _has_documents(col):
        options["with_documents"] = False
    return options


def _has_documents(col: Any) -> bool:
    """Whether ``col`` stores documents and searches them: every engine collection; not
    (yet) the collections of a sharded ``keeldb.ray`` database, served by ``--ray``."""
    return hasattr(col, "text_search")


def _no_documents(what: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{what} is not available on this server: its collections are sharded "
        "(keeldb serve --ray), and sharded collections have no documents yet"
    )


def _documents(col: Any, documents: list[str | None] | None) -> dict[str, Any]:
    """The ``documents=`` keyword of an upsert (none when the request carries none);
    InvalidArgumentError when ``col`` cannot store them."""
    if documents is None:
        return {}
    if not _has_documents(col):
        raise _no_documents("documents")
    return {"documents": documents}


def _text_method(col: Any, name: str) -> Any:
    """``col.text_search`` / ``col.hybrid_search``, or InvalidArgumentError when ``col``
    has no documents to search."""
    if not _has_documents(col):
        raise _no_documents(name)
    return getattr(col, name)
