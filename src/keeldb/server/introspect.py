"""Two read routes that tell a client about itself and about one search (docs/server.md).

* ``GET /v1/whoami``: the calling key's role, what it may do and which workspaces it may
  see, so a user interface can hide what the key may not do (the server still checks
  every request: hiding a button is a courtesy, not the security).
* ``POST /v1/workspaces/{ws}/collections/{name}/explain``: a search (the ``search``
  request body, unchanged) answered with its hits *and* the engine's
  :class:`~keeldb.types.SearchStats` for that one call: the plan used in each segment,
  the engine's time, the distance computations.

The stats are captured by an ``on_search`` callback registered for the duration of the
call only and keyed to the worker thread running it (callbacks run synchronously in the
searching thread), so concurrent searches neither see nor disturb it, and plain searches
never pay for stats.
"""

from __future__ import annotations

import threading
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keeldb.errors import AuthError, KeelError, PermissionDeniedError
from keeldb.protocol import wire
from keeldb.protocol.api import COLLECTION
from keeldb.server.config import ApiKey, Permission
from keeldb.server.limits import check_ef, check_filter, check_k
from keeldb.server.marks import collection_body, requires
from keeldb.server.models import ErrorResponse, HitModel, SearchRequest
from keeldb.server.routes import COLLECTION_ERRORS
from keeldb.server.state import ServerState
from keeldb.types import SearchStats

__all__ = [
    "ExplainResponse",
    "SearchStatsModel",
    "WhoAmIResponse",
    "add_introspection_routes",
    "whoami",
]

_PERMISSIONS: tuple[Permission, ...] = ("read", "write", "admin")
_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    cls.status: {"model": ErrorResponse, "description": cls.code}
    for cls in (AuthError, PermissionDeniedError)
}


class WhoAmIResponse(BaseModel):
    """What the calling key is and may do."""

    auth: bool = Field(description="false when the server has no keys (everyone may do all)")
    role: str | None = Field(description="admin, read-write or read-only; null without auth")
    permissions: list[str] = Field(description="a subset of read, write, admin")
    workspaces: list[str] | None = Field(description="the workspaces it may use; null: all")


class SearchStatsModel(BaseModel):
    """:class:`keeldb.SearchStats` of one search (see docs/api.md)."""

    latency_s: float = Field(description="engine time, excluding HTTP and JSON")
    queries: int
    k: int
    ef: int
    segments_searched: int
    plans: dict[str, str] = Field(description="unit (mem, seg-<id>) -> plan used there")
    distance_computations: int
    nodes_visited: int
    filtered: bool
    matched_rows: int | None


class ExplainResponse(BaseModel):
    """A search's hits and the engine's stats for it."""

    hits: list[HitModel]
    stats: SearchStatsModel


def whoami(api_key: ApiKey | None) -> dict[str, Any]:
    """The ``/v1/whoami`` answer for ``api_key`` (None: the server has no keys)."""
    if api_key is None:
        return {"auth": False, "role": None, "permissions": list(_PERMISSIONS), "workspaces": None}
    return {
        "auth": True,
        "role": api_key.role,
        "permissions": [p for p in _PERMISSIONS if api_key.allows(p, None)],
        "workspaces": None if api_key.workspaces is None else sorted(api_key.workspaces),
    }


def _search_with_stats(col: Any, vector: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Run ``col.search`` in this thread and return its hits and :class:`SearchStats`."""
    me = threading.get_ident()
    seen: list[SearchStats] = []

    def capture(stats: SearchStats) -> None:
        if threading.get_ident() == me:
            seen.append(stats)

    col.on_search(capture)
    try:
        hits = col.search(vector, **options)
    finally:
        col.off_search(capture)
    if len(seen) != 1:
        raise KeelError(f"expected the stats of one search, got {len(seen)}")
    return {"hits": [wire.hit_to_wire(h) for h in hits], "stats": asdict(seen[0])}


def add_introspection_routes(router: APIRouter, state: ServerState) -> None:
    """Add ``GET /v1/whoami`` and ``POST .../{name}/explain`` to ``router`` (whose route
    class must be :class:`~keeldb.server.app.KeelRoute`)."""
    db = state.db
    cfg = state.config

    @router.get("/v1/whoami", response_model=WhoAmIResponse, responses=_AUTH_ERRORS)
    @requires(None)
    async def who_am_i(request: Request) -> dict[str, Any]:
        """The calling key's role, permissions and workspaces (any valid key)."""
        return whoami(request.state.api_key)

    @router.post(
        COLLECTION + "/explain", response_model=ExplainResponse, responses=COLLECTION_ERRORS
    )
    @requires("read")
    @collection_body(SearchRequest)
    async def explain(ws: str, name: str, body: SearchRequest) -> Response:
        """A ``search`` (same body, same limits; ``vector`` may be a string for a
        collection with an embedding function) answered with its hits and the engine's
        stats for it: the plan in each segment, engine time, distance computations."""
        check_k(body.k, cfg)
        check_ef(body.ef, cfg)
        check_filter(body.filter, cfg)
        vector_field = body.vector
        plain = vector_field.model_dump() if isinstance(vector_field, BaseModel) else vector_field
        options = {
            "k": body.k,
            "ef": body.ef,
            "filter": body.filter,
            "exact": body.exact,
            "with_metadata": body.with_metadata,
        }
        if not body.with_documents:
            options["with_documents"] = False

        def work() -> dict[str, Any]:
            # a string is a text query, embedded by the collection's embedding function
            vector = plain if isinstance(plain, str) else wire.decode_vector(plain)
            return _search_with_stats(db.get_collection(name, workspace=ws), vector, options)

        return await state.run_json(work)
