"""The HTTP/JSON API: a FastAPI app over one open :class:`keeldb` database.

Routes mirror the embedded API (see docs/server.md). Three rules shape every handler:

* **Auth first.** :class:`KeelRoute` checks the API key and its role/workspaces before the
  body is even parsed, so an unauthenticated caller learns nothing from 400s.
* **Engine work off the event loop** (:meth:`~keeldb.server.state.ServerState.run_json`).
* **Errors are exceptions.** Handlers raise KeelDB errors;
  :func:`keeldb.server.handlers.error_response_for` turns them into
  ``{"error", "message"}`` with the class's status.

Requests take one of two paths through the same steps (:mod:`keeldb.server.request`): the
hot collection POSTs go through the :class:`~keeldb.server.fastlane.FastLane`, everything
else through the middlewares and :class:`KeelRoute`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from keeldb._version import __version__
from keeldb.server.config import ServerConfig
from keeldb.server.dashboard import install_dashboard
from keeldb.server.fastlane import FastLane, lane_routes
from keeldb.server.handlers import install_handlers
from keeldb.server.introspect import add_introspection_routes
from keeldb.server.limits import BodyLimitMiddleware
from keeldb.server.marks import is_public, permission_of
from keeldb.server.metrics import MetricsMiddleware
from keeldb.server.request import BodyRoute, authorize, call_with_body
from keeldb.server.routes import add_api_routes, add_open_routes
from keeldb.server.state import ServerState

__all__ = ["KeelRoute", "create_app"]

log = logging.getLogger("keeldb.server")


class KeelRoute(APIRoute):
    """An APIRoute that authorizes the request before its body is read or parsed, and
    serves :func:`~keeldb.server.marks.collection_body` endpoints with the fast lane's
    own steps (:func:`~keeldb.server.request.call_with_body`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()
        if is_public(self.endpoint):
            return original
        permission = permission_of(self.endpoint)
        body_route = BodyRoute.of(self.endpoint, self.path)

        async def handler(request: Request) -> Response:
            state: ServerState = request.app.state.keeldb
            params = request.path_params
            request.state.api_key = authorize(
                state.config.keys, request.scope["headers"], params.get("ws"), permission
            )
            if body_route is None:
                return await original(request)
            return await call_with_body(body_route, params["ws"], params["name"], request.receive)

        return handler


def create_app(
    db: Any, config: ServerConfig | None = None, *, close_db_on_shutdown: bool = False
) -> FastAPI:
    """Build the ASGI app serving ``db`` (an open ``keeldb`` Database).

    The app never opens the database; with ``close_db_on_shutdown`` its lifespan shutdown
    flushes every collection and closes ``db`` after in-flight requests finish (that is
    what ``keeldb serve`` uses). Otherwise the caller keeps ownership of ``db``.
    """
    state = ServerState(db, config or ServerConfig())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        log.info(
            "shutting down: finishing queued work%s",
            ", closing the database" * close_db_on_shutdown,
        )
        await asyncio.get_running_loop().run_in_executor(None, state.shutdown, close_db_on_shutdown)

    app = FastAPI(
        title="KeelDB",
        version=__version__,
        description="HTTP/JSON API of a KeelDB database: collections in workspaces, "
        "upsert, get, delete, count, search, scan. Errors are "
        '`{"error": code, "message": text}`.',
        lifespan=lifespan,
        # Served by routes.add_open_routes instead, behind the same key check.
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
    add_introspection_routes(app.router, state)
    _add_middleware(app, state)
    install_dashboard(app)  # after the middleware: its headers wrap the fast lane too
    _document_bearer_auth(app)
    return app


def _add_middleware(app: FastAPI, state: ServerState) -> None:
    """The middlewares, outside in: the fast lane (the hot collection routes skip
    everything below it), metrics (time everything, 413s included), CORS (so even a 413
    carries CORS headers), the body limit."""
    cfg = state.config
    # add_middleware wraps: the last added is outermost.
    app.add_middleware(BodyLimitMiddleware, max_bytes=cfg.max_body_bytes)
    if cfg.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins,
            allow_methods=["GET", "POST", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    app.add_middleware(FastLane, state=state, routes=lane_routes(app.router.routes))


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
