"""The one place where exceptions become HTTP responses (:func:`error_response_for`).

Every answer that is not a success has the body ``{"error": code, "message": ...}``:

* a :class:`~keeldb.errors.KeelError` uses its class's ``code`` and ``status``;
* FastAPI's request validation errors (wrong types, missing fields, malformed JSON) become
  400 ``invalid_argument`` — never FastAPI's default 422 shape;
* Starlette's own HTTP errors (unknown route, wrong method, unparsable body) keep their
  status with a matching code;
* a plain ``ValueError`` escaping the engine is bad input it did not type: 400;
* anything else is a bug: 500 ``internal``, logged with its traceback, with no details
  sent to the client.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from keeldb.errors import InvalidArgumentError, KeelError

__all__ = ["error_response", "error_response_for", "install_handlers", "validation_message"]

log = logging.getLogger("keeldb.server")

# Starlette statuses that have no KeelDB class of their own.
_HTTP_CODES = {
    400: "invalid_argument",
    401: "unauthorized",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """A JSON error response ``{"error": code, "message": message}``."""
    body = json.dumps({"error": code, "message": message}, separators=(",", ":")).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def validation_message(errors: Sequence[Any], limit: int = 3) -> str:
    """A short human-readable summary of pydantic/FastAPI validation errors, naming the
    location of each (``body.k: Input should be a valid integer``)."""
    parts = []
    for err in list(errors)[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            parts.append(f"malformed JSON body: {err.get('ctx', {}).get('error', err['msg'])}")
        else:
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    more = len(errors) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts) or "invalid request"


def error_response_for(exc: BaseException, method: str, path: str) -> Response:
    """The response for any exception raised while serving ``method path``: the one
    mapping both request paths use (the FastAPI exception handlers and the fast lane)."""
    if isinstance(exc, KeelError):
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.status >= 500:
            log.error("%s %s failed: %s: %s", method, path, exc.code, exc)
        return error_response(exc.status, exc.code, exc.message, headers)
    if isinstance(exc, RequestValidationError):
        return error_response(
            InvalidArgumentError.status, InvalidArgumentError.code, validation_message(exc.errors())
        )
    if isinstance(exc, StarletteHTTPException):
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))
    if isinstance(exc, ValueError):  # bad input the engine did not type
        return error_response(InvalidArgumentError.status, InvalidArgumentError.code, str(exc))
    # A bug: logged with its traceback, answered without details.
    log.error("%s %s: unexpected error", method, path, exc_info=exc)
    return error_response(500, "internal", "internal server error (see the server log)")


async def _handle(request: Request, exc: Exception) -> Response:
    return error_response_for(exc, request.method, request.url.path)


def install_handlers(app: FastAPI) -> None:
    """Route every exception an endpoint raises to :func:`error_response_for`.

    Starlette picks a handler by the exception's most specific registered class, which is
    the order :func:`error_response_for` tests them in; ``Exception`` (the 500) is served
    by Starlette's outermost error middleware.
    """
    for cls in (KeelError, RequestValidationError, StarletteHTTPException, ValueError, Exception):
        app.add_exception_handler(cls, _handle)
