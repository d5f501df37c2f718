"""Request limits: body size (an ASGI middleware) and per-argument checks.

Limits protect the one server process from a single request that would hold a worker
thread or memory for long: a 2 GiB body, ``k = 10**9``, a filter nested 10,000 deep.
Each violation is a typed KeelDB error, so it reaches the client as
``{"error": code, "message": ...}`` like any other.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keeldb.errors import InvalidArgumentError, PayloadTooLargeError
from keeldb.server.config import ServerConfig
from keeldb.server.handlers import error_response_for

__all__ = [
    "BodyLimitMiddleware",
    "BodyTooLarge",
    "check_batch",
    "check_count",
    "check_declared_length",
    "check_ef",
    "check_filter",
    "check_k",
    "check_query_batch",
    "filter_depth",
    "limited_receive",
    "too_large",
]


def too_large(max_bytes: int) -> PayloadTooLargeError:
    """The error for a request body over ``max_bytes``."""
    return PayloadTooLargeError(f"request body is larger than the limit of {max_bytes} bytes")


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit: 413 ``payload_too_large``, and the connection is
    closed after the answer (the rest of the body is never read).

    An HTTPException because FastAPI turns any other exception raised while reading the
    body into a 400; this one reaches the error mapping with its status and headers.
    """

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            PayloadTooLargeError.status,
            too_large(max_bytes).message,
            headers={"connection": "close"},
        )


def check_declared_length(headers: list[tuple[bytes, bytes]], max_bytes: int) -> None:
    """Raise :class:`BodyTooLarge` when raw ASGI ``headers`` declare a ``Content-Length``
    over ``max_bytes`` (before any byte of the body is read)."""
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return  # not a number: the body is counted as it arrives
            if declared > max_bytes:
                raise BodyTooLarge(max_bytes)
            return


def limited_receive(receive: Receive, max_bytes: int) -> Receive:
    """``receive`` counting the body bytes it passes on; raises :class:`BodyTooLarge` as
    soon as they pass ``max_bytes`` (a chunked body is refused without reading it all)."""
    seen = 0

    async def counting_receive() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > max_bytes:
                raise BodyTooLarge(max_bytes)
        return message

    return counting_receive


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 ``payload_too_large`` on the full
    ASGI stack (the fast lane applies the same two checks itself).

    A declared ``Content-Length`` over the limit is refused before any byte is read
    (:func:`check_declared_length`); a chunked body is counted as it arrives and refused as
    soon as it passes the limit (:func:`limited_receive`).
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            check_declared_length(scope["headers"], self.max_bytes)
            await self.app(scope, limited_receive(receive, self.max_bytes), tracking_send)
        except BodyTooLarge as exc:
            if not started:
                response = error_response_for(exc, scope["method"], scope["path"])
                await response(scope, receive, send)


def check_k(k: int, config: ServerConfig) -> None:
    """Raise :class:`InvalidArgumentError` unless ``1 <= k <= max_k``."""
    if not 1 <= k <= config.max_k:
        raise InvalidArgumentError(f"k must be between 1 and {config.max_k}, got {k}")


def check_ef(ef: int | None, config: ServerConfig) -> None:
    """Raise :class:`InvalidArgumentError` unless ``ef`` is None or ``1 <= ef <= max_ef``."""
    if ef is not None and not 1 <= ef <= config.max_ef:
        raise InvalidArgumentError(f"ef must be between 1 and {config.max_ef}, got {ef}")


def check_batch(items: Sized, config: ServerConfig, what: str = "ids") -> None:
    """Raise :class:`PayloadTooLargeError` when a batch holds more than ``max_batch``."""
    check_count(len(items), config, what)


def check_count(n: int, config: ServerConfig, what: str) -> None:
    """Raise :class:`PayloadTooLargeError` when ``n`` (any int, e.g. a requested scan
    limit) is more than ``max_batch``."""
    if n > config.max_batch:
        raise PayloadTooLargeError(f"{n} {what} in one request; the limit is {config.max_batch}")


def check_query_batch(n: int, config: ServerConfig) -> None:
    """Raise :class:`PayloadTooLargeError` when a search_batch has too many queries."""
    if n > config.max_query_batch:
        raise PayloadTooLargeError(
            f"{n} queries in one search_batch; the limit is {config.max_query_batch}"
        )


def filter_depth(value: Any, _level: int = 0, _limit: int = 10_000) -> int:
    """Nesting depth of a JSON value (a scalar is 0, ``{"a": 1}`` is 1).

    Stops counting past ``_limit`` so a pathological value cannot exhaust the stack.
    """
    if _level > _limit:
        return _level
    if isinstance(value, dict):
        return 1 + max((filter_depth(v, _level + 1, _limit) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((filter_depth(v, _level + 1, _limit) for v in value), default=0)
    return 0


def check_filter(flt: dict[str, Any] | None, config: ServerConfig) -> None:
    """Raise :class:`InvalidArgumentError` when ``flt`` nests deeper than
    ``max_filter_depth`` (each object or list counts one level)."""
    if flt is None:
        return
    if filter_depth(flt, _limit=config.max_filter_depth + 1) > config.max_filter_depth:
        raise InvalidArgumentError(
            f"filter nests deeper than the limit of {config.max_filter_depth} levels"
        )
