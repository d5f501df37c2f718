"""The parts of the HTTP API both sides spell: paths and the API key variable.

The server registers its routes under the path templates (``{ws}`` and ``{name}`` are
path parameters); the client fills them in with :func:`workspace_path` and
:func:`collection_path`, which percent-encode the names. docs/server.md lists every route.
"""

from __future__ import annotations

from urllib.parse import quote

__all__ = [
    "ALL_COLLECTIONS",
    "API_KEY_ENV",
    "BACKUP",
    "COLLECTION",
    "WORKSPACE",
    "WORKSPACES",
    "collection_path",
    "workspace_path",
]

# The environment variable holding an API key: the server's admin key and the client's
# default key.
API_KEY_ENV = "KEELDB_API_KEY"

WORKSPACES = "/v1/workspaces"
ALL_COLLECTIONS = "/v1/collections"
WORKSPACE = WORKSPACES + "/{ws}"
COLLECTION = WORKSPACE + "/collections/{name}"
BACKUP = "/v1/backup"


def workspace_path(workspace: str) -> str:
    """:data:`WORKSPACE` for ``workspace``, percent-encoded (a ``/`` in it included)."""
    return f"{WORKSPACES}/{quote(workspace, safe='')}"


def collection_path(name: str, workspace: str) -> str:
    """:data:`COLLECTION` for ``name`` in ``workspace``, both percent-encoded."""
    return f"{workspace_path(workspace)}/collections/{quote(name, safe='')}"
