"""What an endpoint declares about itself: the permission it needs, whether it is open to
everyone, and the body model the request path parses for it.

The route decorators in :mod:`keeldb.server.routes` set these marks; both request paths
(:class:`~keeldb.server.app.KeelRoute` and the :mod:`~keeldb.server.fastlane`) read them
through :func:`permission_of`, :func:`is_public` and :func:`body_of`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from keeldb.server.config import Permission

__all__ = [
    "BodySpec",
    "body_of",
    "collection_body",
    "is_public",
    "permission_of",
    "public",
    "requires",
]

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_PERMISSION_ATTR = "__keeldb_permission__"
_PUBLIC_ATTR = "__keeldb_public__"
_BODY_ATTR = "__keeldb_body_model__"


@dataclass(frozen=True, slots=True)
class BodySpec:
    """The body of a :func:`collection_body` endpoint: its model, and whether an empty body
    (or ``null``) is allowed and means ``body=None``."""

    model: type[BaseModel]
    optional: bool


def requires(permission: Permission | None) -> Callable[[Endpoint], Endpoint]:
    """Mark an endpoint with the permission a key needs to call it.

    ``None`` means any valid key (still 401 without one when keys are configured). The
    workspace checked is the ``ws`` path parameter when the route has one.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _PERMISSION_ATTR, permission)
        return endpoint

    return mark


def public(endpoint: Endpoint) -> Endpoint:
    """Mark an endpoint as open to everyone, keys or not (``/healthz``, and the docs with
    ``public_docs``)."""
    setattr(endpoint, _PUBLIC_ATTR, True)
    return endpoint


def collection_body(
    model: type[BaseModel], *, optional: bool = False
) -> Callable[[Endpoint], Endpoint]:
    """Mark an ``async def endpoint(ws, name, body)`` whose body the request path parses.

    Both request paths then read the body, parse it with ``model.model_validate_json``
    (pydantic's own JSON parser, one pass) and call the endpoint directly, skipping
    FastAPI's generic parameter resolution — about half of the framework's CPU per search,
    measured in process. OpenAPI still comes from the endpoint's signature, which must
    match ``model``. ``optional``: an empty body (or ``null``) means ``body=None``.
    """

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _BODY_ATTR, BodySpec(model, optional))
        return endpoint

    return mark


def permission_of(endpoint: Callable[..., Any]) -> Permission | None:
    """The permission :func:`requires` set on ``endpoint`` (None when unmarked)."""
    permission: Permission | None = getattr(endpoint, _PERMISSION_ATTR, None)
    return permission


def is_public(endpoint: Callable[..., Any]) -> bool:
    """True when :func:`public` marked ``endpoint``."""
    return bool(getattr(endpoint, _PUBLIC_ATTR, False))


def body_of(endpoint: Callable[..., Any]) -> BodySpec | None:
    """The :class:`BodySpec` :func:`collection_body` set on ``endpoint``, or None."""
    spec: BodySpec | None = getattr(endpoint, _BODY_ATTR, None)
    return spec
