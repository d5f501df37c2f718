"""KeelDB: an embeddable, durable vector database for Python.

Quick start::

    import keeldb
    with keeldb.open("./data") as db:
        col = db.create_collection("docs", dim=384)
        col.upsert(["a"], [[0.1] * 384], [{"lang": "en"}])
        hits = col.search([0.1] * 384, k=5, filter={"lang": "en"})

See ``docs/api.md`` for the whole API and the README for the durability contract.
"""

from typing import Any

from keeldb._version import __version__ as __version__
from keeldb.engine.backup import restore
from keeldb.engine.check import CheckReport, check
from keeldb.engine.collection import Collection
from keeldb.engine.database import Database, open
from keeldb.engine.repair import RepairReport, repair
from keeldb.engine.transaction import Transaction
from keeldb.errors import (
    AlreadyExistsError,
    AuthError,
    BusyError,
    ClosedError,
    CollectionNotFoundError,
    CorruptionError,
    DatabaseLockedError,
    DimensionMismatchError,
    InvalidArgumentError,
    KeelError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RemoteError,
    StorageError,
)
from keeldb.index.threads import set_search_threads
from keeldb.types import (
    BackupReport,
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    InsertStats,
    Page,
    PartBytes,
    Record,
    SearchStats,
    SegmentStats,
)

__all__ = [
    "AlreadyExistsError",
    "AsyncClient",
    "AuthError",
    "BackupReport",
    "BusyError",
    "CheckReport",
    "Client",
    "ClosedError",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
    "CollectionStats",
    "CompactionReport",
    "CorruptionError",
    "Database",
    "DatabaseLockedError",
    "DimensionMismatchError",
    "Hit",
    "InsertStats",
    "InvalidArgumentError",
    "KeelError",
    "NotFoundError",
    "Page",
    "PartBytes",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Record",
    "RemoteError",
    "RepairReport",
    "SearchStats",
    "SegmentStats",
    "StorageError",
    "Transaction",
    "check",
    "open",
    "repair",
    "restore",
    "set_search_threads",
]


def __getattr__(name: str) -> Any:
    # The HTTP client (base install only) is imported lazily, so that ``import keeldb``
    # does not load the HTTP stack embedded use never needs.
    if name == "Client":
        from keeldb.client import Client

        return Client
    if name == "AsyncClient":  # also keeps httpx unimported until a client is made
        from keeldb.aclient import AsyncClient

        return AsyncClient
    raise AttributeError(f"module 'keeldb' has no attribute {name!r}")
