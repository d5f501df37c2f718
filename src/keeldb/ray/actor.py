"""The shard: one KeelDB database directory, owned by one Ray actor.

:class:`ShardServer` is a plain class; :mod:`keeldb.ray.shardset` turns it into a Ray
actor (``ray.remote(ShardServer).options(...)``) with ``max_restarts``, so that after its
process dies Ray runs ``__init__`` again, which re-opens the directory: the embedded
engine replays its WAL, and every write the shard acknowledged is there again.

Writes that span several shards are staged first (:meth:`prepare`: a
``Collection.transaction()`` per shard, which validates every item when staged) and
applied second (:meth:`commit`), so a batch with one bad item is refused on every shard
before any shard applies anything. A restart loses staged transactions; :meth:`commit`
then answers None and the router re-sends that shard's part as one plain write.

The actor is threaded (``max_concurrency`` > 1): the engine is thread-safe, and a slow
write or compaction must not queue a shard's searches or its liveness ping.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import keeldb
from keeldb.errors import KeelError
from keeldb.ray.layout import check_or_write_record, shard_directory

__all__ = ["COLLECTION_METHODS", "ShardServer"]

# The Collection methods the router may call on a shard (all of them idempotent in
# effect, so the router may retry them after a restart).
COLLECTION_METHODS = frozenset(
    {
        "compact",
        "count",
        "delete",
        "flush",
        "get",
        "info",
        "scan",
        "search",
        "search_batch",
        "stats",
        "upsert",
    }
)
DATABASE_METHODS = frozenset({"list_collections", "list_workspaces"})

# A staged transaction nobody committed (its router died) is dropped after this long.
STAGED_TTL_S = 600.0


class ShardServer:
    """Shard ``index`` of ``count`` of the sharded database at ``root`` (on this host).

    Opening never raises: an error (a locked directory, another shard count, damage) is
    kept and raised by every call, so the router reports it as the shard's error instead
    of Ray reporting a dead actor.
    """

    def __init__(
        self, root: str, index: int, count: int, durability: str, options: dict[str, Any]
    ) -> None:
        self.index = index
        self.directory = shard_directory(root, index)
        self._db: keeldb.Database | None = None
        self._error: KeelError | None = None
        self._staged: dict[str, tuple[float, keeldb.Transaction]] = {}
        self._lock = threading.Lock()
        try:
            os.makedirs(self.directory, exist_ok=True)
            check_or_write_record(self.directory, index, count)
            self._db = keeldb.open(self.directory, durability=durability, **options)
        except KeelError as exc:
            self._error = exc
        except OSError as exc:
            self._error = keeldb.StorageError(f"shard {index}: {self.directory}: {exc}")

    def _database(self) -> keeldb.Database:
        if self._db is None:
            assert self._error is not None
            raise self._error
        return self._db

    def describe(self) -> dict[str, Any]:
        """Index, directory, host, Ray node id, pid and live rows of this shard."""
        db = self._database()
        node = ""
        try:
            import ray

            node = ray.get_runtime_context().get_node_id()
        except Exception:  # outside Ray (unit use): no node id
            node = ""
        return {
            "index": self.index,
            "directory": self.directory,
            "host": socket.gethostname(),
            "node": node,
            "pid": os.getpid(),
            "rows": sum(info.count for info in db.list_collections()),
        }

    def ping(self) -> int:
        """This process's pid (a liveness probe that touches no data)."""
        return os.getpid()

    # --- database-level calls ---------------------------------------------------------

    def create_collection(self, name: str, dim: int, metric: str, **kwargs: Any) -> Any:
        """``Database.create_collection`` here; returns the collection's info."""
        return self._database().create_collection(name, dim, metric, **kwargs).info()

    def drop_collection(self, name: str, workspace: str, missing_ok: bool) -> bool:
        """``Database.drop_collection``; with ``missing_ok`` an absent collection is not an
        error (a retried drop). Returns whether it existed."""
        try:
            self._database().drop_collection(name, workspace=workspace)
        except keeldb.CollectionNotFoundError:
            if not missing_ok:
                raise
            return False
        return True

    def database_call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """A read-only Database method: ``list_collections`` or ``list_workspaces``."""
        if method not in DATABASE_METHODS:
            raise keeldb.InvalidArgumentError(f"not a shard database method: {method!r}")
        return getattr(self._database(), method)(*args, **kwargs)

    # --- collection calls -------------------------------------------------------------

    def _collection(self, workspace: str, name: str) -> keeldb.Collection:
        return self._database().get_collection(name, workspace=workspace)

    def collection_call(
        self, workspace: str, name: str, method: str, *args: Any, **kwargs: Any
    ) -> Any:
        """``Collection.<method>(*args, **kwargs)`` on ``workspace/name``; ``method`` is
        one of :data:`COLLECTION_METHODS`."""
        if method not in COLLECTION_METHODS:
            raise keeldb.InvalidArgumentError(f"not a shard collection method: {method!r}")
        return getattr(self._collection(workspace, name), method)(*args, **kwargs)

    def prepare(
        self,
        token: str,
        workspace: str,
        name: str,
        ops: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> None:
        """Stage ``ops`` (``("upsert", (ids, vectors, metadata))`` or ``("delete",
        (ids,))``) in a new transaction kept under ``token``. Raises the engine's error
        for a bad item (and keeps nothing)."""
        tx = self._collection(workspace, name).transaction()
        for op, args in ops:
            if op == "upsert":
                tx.upsert(*args)
            elif op == "delete":
                tx.delete(*args)
            else:
                raise keeldb.InvalidArgumentError(f"not a staged operation: {op!r}")
        now = time.monotonic()
        with self._lock:
            for old, (at, _) in list(self._staged.items()):
                if now - at > STAGED_TTL_S:
                    del self._staged[old]
            self._staged[token] = (now, tx)

    def commit(self, token: str) -> dict[str, int] | None:
        """Apply the transaction staged under ``token``; returns its counts (upserted,
        deleted, replaced), or None when no such transaction is staged here (this
        process restarted since :meth:`prepare`)."""
        with self._lock:
            entry = self._staged.pop(token, None)
        if entry is None:
            return None
        return entry[1].commit()

    def rollback(self, token: str) -> None:
        """Discard the transaction staged under ``token`` (if any)."""
        with self._lock:
            entry = self._staged.pop(token, None)
        if entry is not None:
            entry[1].rollback()

    def close(self) -> None:
        """Close the database (flushing and sealing memory). Idempotent."""
        if self._db is not None:
            self._db.close()
