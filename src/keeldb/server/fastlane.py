"""The fast lane: POST routes on one collection served without the framework's stack.

A search over HTTP costs the server ~0.6 ms of CPU against ~0.2 ms for the engine call,
and almost all of that is Python on the event loop holding the GIL, so the loop is what
limits throughput on a small machine. Profiled under 8 concurrent clients (py-spy,
``--gil``), about half of the loop's time was the ASGI stack between uvicorn and the
handler: Starlette's exception middleware, the router trying each route, FastAPI's
request/response wrappers, and one ``send`` wrapper per middleware on the way out.

:class:`FastLane` is the outermost user middleware. For ``POST
/v1/workspaces/{ws}/collections/{name}/{op}`` where ``op`` is a route declared with
:func:`~keeldb.server.app.collection_body`, it does what the layers below it would do —
the body limit (413), auth (401/403), pydantic parsing of the body (400), the endpoint
(the very same function the route calls), the error mapping of
:mod:`keeldb.server.handlers` and the request metrics — and answers directly. Every other
request, and every request when CORS is configured, goes through the normal stack.
``tests/server/test_fastlane.py`` checks the two paths give identical answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from keeldb.errors import KeelError
from keeldb.server.handlers import (
    internal_error_response,
    keel_error_response,
    validation_error_response,
    value_error_response,
)
from keeldb.server.limits import declared_length, too_large

__all__ = ["FastLane", "FastRoute"]

# The same segments Starlette's "{ws}" and "{name}" match: anything but a slash.
_PATH = re.compile(r"/v1/workspaces/([^/]+)/collections/([^/]+)/([A-Za-z_]+)")


@dataclass(frozen=True, slots=True)
class FastRoute:
    """One route the lane serves: its endpoint ``endpoint(ws=, name=, body=)``, body model,
    whether the body may be empty, the permission it needs, and its path template (the
    metrics label)."""

    endpoint: Callable[..., Coroutine[Any, Any, Response]]
    model: type[BaseModel]
    optional: bool
    permission: Any
    template: str


class _BodyTooLarge(Exception):
    pass


class FastLane:
    """Pure ASGI middleware answering the :class:`FastRoute` requests itself."""

    def __init__(self, app: ASGIApp, state: Any, routes: dict[str, FastRoute]) -> None:
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
        self, route: FastRoute, ws: str, name: str, scope: Scope, receive: Receive, send: Send
    ) -> None:
        start = time.perf_counter()
        state = self.state
        metrics = state.metrics
        metrics.in_flight += 1
        status = 500  # what is recorded if we never answer (cancelled, say), as the stack does
        try:
            status = await self._respond(route, ws, name, scope, receive, send)
        finally:
            metrics.in_flight -= 1
            metrics.observe("POST", route.template, status, time.perf_counter() - start)

    async def _respond(
        self, route: FastRoute, ws: str, name: str, scope: Scope, receive: Receive, send: Send
    ) -> int:
        state = self.state
        try:
            response = await self._answer(route, ws, name, scope, receive)
        except _BodyTooLarge:
            response = keel_error_response(
                too_large(state.config.max_body_bytes), "POST", scope["path"]
            )
            response.headers["connection"] = "close"
        except KeelError as exc:
            response = keel_error_response(exc, "POST", scope["path"])
        except ValueError as exc:
            response = value_error_response(exc)
        except Exception as exc:
            response = internal_error_response(exc, "POST", scope["path"])
        await response(scope, receive, send)
        return response.status_code

    async def _answer(
        self, route: FastRoute, ws: str, name: str, scope: Scope, receive: Receive
    ) -> Response:
        state = self.state
        limit = state.config.max_body_bytes
        headers = scope["headers"]
        if declared_length(headers) > limit:
            raise _BodyTooLarge
        # The first Authorization header, as Starlette's headers.get.
        auth = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), "")
        # Auth before the body is read: an unauthenticated caller learns nothing from 400s.
        state.authorize_header(auth, ws, route.permission)
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return Response(status_code=400)
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        body: BaseModel | None = None
        if not (route.optional and raw.strip() in (b"", b"null")):
            try:
                body = route.model.model_validate_json(raw)
            except ValidationError as exc:
                errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
                return validation_error_response(errors)
        return await route.endpoint(ws=ws, name=name, body=body)
