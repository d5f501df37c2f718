"""The fast lane: POST routes on one collection served without the framework's stack.

A search over HTTP costs the server ~0.6 ms of CPU against ~0.2 ms for the engine call,
and almost all of that is Python on the event loop holding the GIL, so the loop is what
limits throughput on a small machine. Profiled under 8 concurrent clients (py-spy,
``--gil``), about half of the loop's time was the ASGI stack between uvicorn and the
handler: Starlette's exception middleware, the router trying each route, FastAPI's
request/response wrappers, and one ``send`` wrapper per middleware on the way out.

:class:`FastLane` is the outermost user middleware. For ``POST
/v1/workspaces/{ws}/collections/{name}/{op}`` where ``op`` is a route declared with
:func:`~keeldb.server.marks.collection_body`, it serves the request with the very steps
the stack below it uses (:mod:`keeldb.server.request`: body limit, auth, parsing, the same
endpoint, :func:`~keeldb.server.handlers.error_response_for`) and records the request
metrics, but skips the layers in between. Every other request, and every request when
CORS is configured, goes through the normal stack. ``tests/server/test_fastlane.py``
checks the two paths give identical answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from keeldb.protocol.api import COLLECTION
from keeldb.server.handlers import error_response_for
from keeldb.server.limits import check_declared_length, limited_receive
from keeldb.server.request import BodyRoute, authorize, call_with_body
from keeldb.server.state import ServerState

__all__ = ["FastLane", "lane_routes"]

# The same segments Starlette's "{ws}" and "{name}" match: anything but a slash.
_PATH = re.compile(r"/v1/workspaces/([^/]+)/collections/([^/]+)/([A-Za-z_]+)")


def lane_routes(routes: Iterable[BaseRoute]) -> dict[str, BodyRoute]:
    """The lane's routes, by their last path segment: the POST ``collection_body`` routes
    directly under ``/v1/workspaces/{ws}/collections/{name}/`` among ``routes``."""
    prefix = COLLECTION + "/"
    lane: dict[str, BodyRoute] = {}
    for route in routes:
        if not isinstance(route, Route) or route.methods != {"POST"}:
            continue
        op = route.path[len(prefix) :]
        if not route.path.startswith(prefix) or "/" in op or "{" in op:
            continue
        body_route = BodyRoute.of(route.endpoint, route.path)
        if body_route is not None:
            lane[op] = body_route
    return lane


class FastLane:
    """Pure ASGI middleware answering the :func:`lane_routes` requests itself."""

    def __init__(self, app: ASGIApp, state: ServerState, routes: dict[str, BodyRoute]) -> None:
        self.app = app
        self.state = state
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
            if match is not None and not self.state.config.cors_origins:
                route = self.routes.get(match.group(3))
                if route is not None:
                    await self._serve(route, match.group(1), match.group(2), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self, route: BodyRoute, ws: str, name: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Answer one request and record it in the metrics (as MetricsMiddleware does)."""
        start = time.perf_counter()
        metrics = self.state.metrics
        metrics.in_flight += 1
        status = 500  # what is recorded if we never answer (cancelled, say), as the stack does
        try:
            config = self.state.config
            try:
                check_declared_length(scope["headers"], config.max_body_bytes)
                authorize(config.keys, scope["headers"], ws, route.permission)
                limited = limited_receive(receive, config.max_body_bytes)
                response = await call_with_body(route, ws, name, limited)
            except Exception as exc:
                response = error_response_for(exc, "POST", scope["path"])
            await response(scope, receive, send)
            status = response.status_code
        finally:
            metrics.in_flight -= 1
            metrics.observe("POST", route.template, status, time.perf_counter() - start)
