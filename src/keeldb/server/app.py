"""The HTTP/JSON API: a FastAPI app over one open :class:`keeldb` database.

Routes mirror the embedded API (see docs/server.md). Three rules shape every handler:

* **Auth first.** :class:`KeelRoute` checks the API key and its role/workspaces before the
  body is even parsed, so an unauthenticated caller learns nothing from 400s.
* **Engine work off the event loop.** Vector decoding, the engine call and JSON encoding of
  the answer run in one thread-pool hop (:meth:`ServerState.run`); faiss and BLAS release
  the GIL there, so concurrent searches use every core while the loop keeps accepting.
* **Errors are exceptions.** Handlers raise KeelDB errors; :mod:`keeldb.server.handlers`
  turns them into ``{"error", "message"}`` with the class's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from keeldb.errors import AuthError, PermissionDeniedError
from keeldb.server import metrics as metrics_mod
from keeldb.server.config import ApiKey, Permission, ServerConfig
from keeldb.server.fastlane import FastLane, FastRoute
from keeldb.server.handlers import install_handlers
from keeldb.server.limits import BodyLimitMiddleware
from keeldb.server.metrics import MetricsMiddleware, RequestMetrics
from keeldb.server.threads import worker_initializer

__all__ = [
    "KeelRoute",
    "ServerState",
    "collection_body",
    "create_app",
    "public",
    "requires",
]

log = logging.getLogger("keeldb.server")

T = TypeVar("T")
Pool = Literal["read", "write"]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

PERMISSION_ATTR = "__keeldb_permission__"
PUBLIC_ATTR = "__keeldb_public__"
BODY_ATTR = "__keeldb_body_model__"


def requires(permission: Permission | None) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint with the permission a key needs to call it.

    ``None`` means any valid key (still 401 without one when keys are configured). The
    workspace checked is the ``ws`` path parameter when the route has one.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, PERMISSION_ATTR, permission)
        return endpoint

    return mark


def public(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint as open to everyone, keys or not (only ``/healthz``)."""
    setattr(endpoint, PUBLIC_ATTR, True)
    return endpoint


class ServerState:
    """What the handlers share: the database, the settings, the worker pools, the metrics."""

    def __init__(self, db: Any, config: ServerConfig) -> None:
        self.db = db
        self.config = config
        self.metrics = RequestMetrics()
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def pool(self, kind: Pool) -> ThreadPoolExecutor:
        """The ``read`` or ``write`` worker pool, (re)created on demand: an app may see
        several lifespans (test clients start and stop it per use), and each shutdown
        drains the pools.

        Reads (searches, gets, counts) are CPU work: their pool has about one thread per
        core, since more threads only contend for the GIL. Writes mostly wait for fsync
        (and compactions run long): they get their own pool so they never hold up reads.
        """
        executor = self._pools.get(kind)
        if executor is None:
            size = self.config.threads if kind == "read" else self.config.write_threads
            executor = self._pools[kind] = ThreadPoolExecutor(
                max_workers=size,
                thread_name_prefix=f"keeldb-{kind}",
                initializer=worker_initializer,
                initargs=(self.config.threads_per_request,),
            )
        return executor

    async def run(self, fn: Callable[[], T], pool: Pool = "read") -> T:
        """Run ``fn()`` in the ``pool`` worker pool and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self.pool(pool), fn)

    async def run_json(self, fn: Callable[[], Any], pool: Pool = "read") -> Response:
        """Like :meth:`run`, then encode the result as the JSON response, also off-loop."""

        def work() -> bytes:
            # orjson: ~5x faster than json for a search's hits (8% of the server's GIL
            # time under load); non-str keys as json would write them (stats' levels).
            return orjson.dumps(fn(), option=orjson.OPT_NON_STR_KEYS)

        body = await self.run(work, pool)
        return Response(body, media_type="application/json")

    def authorize(self, request: Request, permission: Permission | None) -> ApiKey | None:
        """Check the request's bearer key; return it (None when auth is off).

        Raises :class:`AuthError` (401) without a known key and
        :class:`PermissionDeniedError` (403) when its role or workspaces do not allow
        ``permission`` on the path's workspace.
        """
        return self.authorize_header(
            request.headers.get("authorization", ""), request.path_params.get("ws"), permission
        )

    def authorize_header(
        self, header: str, workspace: str | None, permission: Permission | None
    ) -> ApiKey | None:
        """:meth:`authorize` given the ``Authorization`` header's value and the path's
        workspace (None when the route has none)."""
        keys = self.config.keys
        if not keys.enabled:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        api_key = keys.lookup(token.strip())
        if api_key is None:
            raise AuthError("unknown API key")
        if permission is not None and not api_key.allows(permission, workspace):
            where = f" in workspace {workspace!r}" if workspace is not None else ""
            raise PermissionDeniedError(f"this key ({api_key.role}) may not {permission}{where}")
        return api_key

    def collection_gauges(self) -> list[metrics_mod.CollectionGauge]:
        """Sizes of every collection, for /metrics (runs engine calls: use a worker)."""
        gauges = []
        for info in self.db.list_collections():
            try:
                stats = self.db.get_collection(info.name, workspace=info.workspace).stats()
            except Exception:  # a collection dropped mid-scrape is not worth a failed scrape
                log.debug("stats failed for %s/%s", info.workspace, info.name, exc_info=True)
                continue
            gauges.append(
                metrics_mod.CollectionGauge(
                    info.workspace,
                    info.name,
                    stats.live_count,
                    stats.deleted_count,
                    stats.disk_bytes,
                    stats.wal_bytes,
                    stats.memory_bytes,
                )
            )
        return gauges

    def shutdown(self, close_db: bool) -> None:
        """Wait for queued engine work, then (if ``close_db``) flush and close the database."""
        pools, self._pools = self._pools, {}
        for executor in pools.values():
            executor.shutdown(wait=True)
        if not close_db:
            return
        try:
            for info in self.db.list_collections():
                with contextlib.suppress(Exception):
                    self.db.get_collection(info.name, workspace=info.workspace).flush()
        finally:
            self.db.close()


def collection_body(
    model: type[BaseModel], *, optional: bool = False
) -> Callable[[Endpoint], Endpoint]:
    """Mark an ``async def endpoint(ws, name, body)`` for :class:`KeelRoute`'s fast path.

    The route then parses the body with ``model.model_validate_json`` (pydantic's own
    JSON parser, one pass) and calls the endpoint directly, skipping FastAPI's generic
    parameter resolution — about half of the framework's CPU per search, measured in
    process. OpenAPI still comes from the endpoint's signature, which must match
    ``model``. ``optional``: an empty body (or ``null``) means ``body=None``. Validation
    errors are raised as FastAPI's, so they get the same 400 ``invalid_argument``.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, BODY_ATTR, (model, optional))
        return endpoint

    return mark


class KeelRoute(APIRoute):
    """An APIRoute that authorizes the request before its body is read or parsed."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        permission: Permission | None = getattr(self.endpoint, PERMISSION_ATTR, None)
        if getattr(self.endpoint, PUBLIC_ATTR, False):
            return original
        fast: tuple[type[BaseModel], bool] | None = getattr(self.endpoint, BODY_ATTR, None)
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            state: ServerState = request.app.state.keeldb
            request.state.api_key = state.authorize(request, permission)
            if fast is None:
                return await original(request)
            model, optional = fast
            raw = await request.body()
            body: BaseModel | None = None
            if not (optional and raw.strip() in (b"", b"null")):
                try:
                    body = model.model_validate_json(raw)
                except ValidationError as exc:
                    errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                    raise RequestValidationError(errors) from None
            params = request.path_params
            response: Response = await endpoint(ws=params["ws"], name=params["name"], body=body)
            return response

        return handler


def create_app(
    db: Any, config: ServerConfig | None = None, *, close_db_on_shutdown: bool = False
) -> FastAPI:
    """Build the ASGI app serving ``db`` (an open ``keeldb`` Database).

    The app never opens the database; with ``close_db_on_shutdown`` its lifespan shutdown
    flushes every collection and closes ``db`` after in-flight requests finish (that is
    what ``keeldb serve`` uses). Otherwise the caller keeps ownership of ``db``.
    """
    # routes.py imports this module's helpers, so it is imported here, not at the top.
    from keeldb.server.routes import add_api_routes, add_open_routes

    cfg = config or ServerConfig()
    state = ServerState(db, cfg)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        log.info(
            "shutting down: finishing queued work%s",
            ", closing the database" * close_db_on_shutdown,
        )
        await asyncio.get_running_loop().run_in_executor(None, state.shutdown, close_db_on_shutdown)

    import keeldb

    app = FastAPI(
        title="KeelDB",
        version=getattr(keeldb, "__version__", "0"),
        description="HTTP/JSON API of a KeelDB database: collections in workspaces, "
        "upsert, get, delete, count, search, scan. Errors are "
        '`{"error": code, "message": text}`.',
        lifespan=lifespan,
        # Served by routes.build_open_router instead, behind the same key check.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.keeldb = state
    install_handlers(app)
    # Routes go straight onto the app's router: an included router is matched as a
    # nested router in this FastAPI, which doubles the routing work of every request.
    app.router.route_class = KeelRoute
    add_api_routes(app.router, state)
    add_open_routes(app.router, state)

    # add_middleware wraps: the last added is outermost. Order, outside in: metrics (time
    # everything, 413s included), CORS (so even a 413 carries CORS headers), body limit.
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    # Outermost: the hot collection routes skip everything above (see fastlane.py).
    app.add_middleware(FastLane, state=state, routes=_fast_routes(app))
    from keeldb.server.dashboard import install_dashboard
    from keeldb.server.introspect import add_introspection_routes

    add_introspection_routes(app.router, state)
    install_dashboard(app)  # last: its headers middleware wraps the fast lane too
    _document_bearer_auth(app)
    return app


def _fast_routes(app: FastAPI) -> dict[str, FastRoute]:
    """The ``collection_body`` routes under ``/v1/workspaces/{ws}/collections/{name}/``,
    by their last path segment, for the :class:`FastLane`."""
    from keeldb.server.routes import COLLECTION

    prefix = COLLECTION + "/"
    routes: dict[str, FastRoute] = {}
    for route in app.router.routes:
        if not isinstance(route, APIRoute) or route.methods != {"POST"}:
            continue
        fast = getattr(route.endpoint, BODY_ATTR, None)
        op = route.path[len(prefix) :]
        if fast is None or not route.path.startswith(prefix) or "/" in op or "{" in op:
            continue
        model, optional = fast
        permission = getattr(route.endpoint, PERMISSION_ATTR, None)
        routes[op] = FastRoute(route.endpoint, model, optional, permission, route.path)
    return routes


def _document_bearer_auth(app: FastAPI) -> None:
    """Declare the bearer-key scheme in /openapi.json (the /docs "Authorize" button).

    Written into the schema rather than as a FastAPI security dependency: auth is enforced
    by :class:`KeelRoute`, and a dependency would add work to every request for nothing.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key: Authorization: Bearer <key>",
                }
            }
            for path, operations in schema["paths"].items():
                if path.startswith("/v1/") or path == "/metrics":
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
