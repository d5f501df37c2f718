"""The steps of serving one request, shared by both request paths.

The full stack (the middlewares, then :class:`~keeldb.server.app.KeelRoute`) and the
:class:`~keeldb.server.fastlane.FastLane` call the same functions, in the same order:

1. the body limit: :func:`~keeldb.server.limits.check_declared_length` before anything
   else, then every body byte through :func:`~keeldb.server.limits.limited_receive`;
2. :func:`authorize`, before the body is read: an unauthenticated caller learns nothing
   from 400s;
3. for a :func:`~keeldb.server.marks.collection_body` endpoint, :func:`call_with_body`:
   :func:`read_body`, :func:`parse_body`, then the endpoint itself;
4. any exception becomes a response through :func:`~keeldb.server.handlers.error_response_for`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import Receive

from keeldb.errors import AuthError, PermissionDeniedError
from keeldb.server.config import ApiKey, KeyStore, Permission
from keeldb.server.marks import BodySpec, body_of, permission_of

__all__ = ["BodyRoute", "authorize", "call_with_body", "parse_body", "read_body"]

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class BodyRoute:
    """A :func:`~keeldb.server.marks.collection_body` route: its endpoint
    ``endpoint(ws=, name=, body=)``, its body, the permission it needs, and its path
    template (the metrics label)."""

    endpoint: Callable[..., Coroutine[Any, Any, Response]]
    body: BodySpec
    permission: Permission | None
    template: str

    @classmethod
    def of(cls, endpoint: Callable[..., Any], template: str) -> BodyRoute | None:
        """The route for ``endpoint`` served at ``template``; None when the endpoint is
        not marked with ``collection_body``."""
        spec = body_of(endpoint)
        if spec is None:
            return None
        return cls(endpoint, spec, permission_of(endpoint), template)


def authorize(
    keys: KeyStore, headers: Headers, workspace: str | None, permission: Permission | None
) -> ApiKey | None:
    """Check the bearer key in raw ASGI ``headers``; return it (None when auth is off).

    Only the first ``Authorization`` header counts. Raises :class:`AuthError` (401)
    without a known key and :class:`PermissionDeniedError` (403) when its role or
    workspaces do not allow ``permission`` on ``workspace`` (the path's ``ws``; None for
    routes without one).
    """
    if not keys.enabled:
        return None
    header = next((v.decode("latin-1") for k, v in headers if k == b"authorization"), "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
    api_key = keys.lookup(token.strip())
    if api_key is None:
        raise AuthError("unknown API key")
    if permission is not None and not api_key.allows(permission, workspace):
        raise PermissionDeniedError(api_key.denial(permission, workspace))
    return api_key


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body from ``receive``; None when the client went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # http.disconnect
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def parse_body(spec: BodySpec, raw: bytes) -> BaseModel | None:
    """``raw`` parsed as ``spec.model`` (None for an empty or ``null`` optional body).

    Raises FastAPI's :class:`RequestValidationError`, locations under ``body`` as FastAPI
    reports them, so it maps to the same 400 ``invalid_argument``.
    """
    if spec.optional and raw.strip() in (b"", b"null"):
        return None
    try:
        return spec.model.model_validate_json(raw)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        raise RequestValidationError(errors) from None


async def call_with_body(route: BodyRoute, ws: str, name: str, receive: Receive) -> Response:
    """Read and parse the body, then answer with ``route``'s endpoint (an empty 400 when
    the client went away before sending it all: nobody reads that answer)."""
    raw = await read_body(receive)
    if raw is None:
        return Response(status_code=400)
    body = parse_body(route.body, raw)
    return await route.endpoint(ws=ws, name=name, body=body)
