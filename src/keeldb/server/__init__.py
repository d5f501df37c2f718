"""``keeldb.server``: the HTTP/JSON API over one database (``keeldb serve``).

Needs the ``server`` extra (FastAPI, uvicorn). Importing this package is cheap and needs
neither: :func:`create_app` and :func:`serve` load them on first use, and
:mod:`keeldb.server.config` is standard library only (the CLI uses it with the base
install). The wire protocol the server shares with :class:`keeldb.Client` lives outside
this package, in :mod:`keeldb.protocol`.

Modules: ``config`` (limits, keys), ``app`` (the app and its route class), ``routes``
(one route per API method), ``marks`` (what an endpoint declares: permission, body),
``request`` (the steps of serving a request, shared by both request paths), ``fastlane``
(the hot collection routes without the framework's stack), ``state`` (database, worker
pools, metrics), ``models`` (request/response schemas), ``handlers`` (exceptions → JSON
errors), ``limits``, ``metrics`` (Prometheus text), ``threads`` (BLAS/OpenMP threads per
request), ``runner`` (uvicorn, signals, shutdown), ``testing`` (a server process for tests).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keeldb.server.config import ServerConfig

if TYPE_CHECKING:
    from keeldb.server.app import create_app
    from keeldb.server.runner import serve

__all__ = ["ServerConfig", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from keeldb.server.app import create_app

        return create_app
    if name == "serve":
        from keeldb.server.runner import serve

        return serve
    raise AttributeError(f"module 'keeldb.server' has no attribute {name!r}")
