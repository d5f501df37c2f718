"""``keeldb.server``: the HTTP/JSON API over one database (``keeldb serve``).

Needs the ``server`` extra (FastAPI, uvicorn). Importing this package is cheap and needs
neither: :func:`create_app` and :func:`serve` load them on first use, and
:mod:`keeldb.server.wire` / :mod:`keeldb.server.config` are standard library + numpy only
(the client and the CLI use them with the base install).

Modules: ``config`` (limits, keys), ``wire`` (vector encoding, value types as JSON),
``app`` (the app, auth, worker pool), ``routes`` (one route per API method), ``models``
(request/response schemas), ``handlers`` (exceptions → JSON errors), ``limits``,
``metrics`` (Prometheus text), ``runner`` (uvicorn, signals, shutdown).
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
