"""A sharded database: N ordinary KeelDB database directories, one per Ray actor, behind
the embedded ``Database`` API (see docs/scaling.md)."""

from __future__ import annotations

import os
import threading
from types import TracebackType
from typing import Any

import ray

from keeldb.errors import ClosedError, InvalidArgumentError, KeelError
from keeldb.ray.collection import ShardedCollection
from keeldb.ray.merge import merge_info
from keeldb.ray.results import ShardInfo
from keeldb.ray.shardset import ShardSet, start_ray
from keeldb.types import CollectionInfo

__all__ = ["ShardedDatabase"]


class ShardedDatabase:
    """A database whose collections are spread over ``shard_count`` shards, each an
    ordinary KeelDB directory ``<path>/shard-<i>`` owned by one Ray actor.

    Open with :meth:`open`. Thread-safe; a context manager (closes on exit). Its methods
    mirror :class:`keeldb.Database`, so the HTTP server can serve it.
    """

    def __init__(self, path: str, shard_set: ShardSet, started_ray: bool, durability: str) -> None:
        self.path = path
        self.shard_set = shard_set
        self.durability = durability
        self._started_ray = started_ray
        self._closed = False
        self._lock = threading.Lock()
        self._collections: dict[tuple[str, str], ShardedCollection] = {}

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        shards: int,
        address: str | None = None,
        durability: str = "fsync",
        *,
        max_restarts: int = -1,
        unavailable_timeout_s: float = 30.0,
        start_timeout_s: float = 300.0,
        max_concurrency: int = 4,
        ray_init: dict[str, Any] | None = None,
        **options: Any,
    ) -> ShardedDatabase:
        """Open (creating if needed) the sharded database at ``path`` with ``shards``
        shards; returns when every shard has opened its directory.

        ``address=None`` reuses this process's Ray connection, or starts a local Ray
        bound to 127.0.0.1 (no dashboard, usage statistics off; ``ray_init`` adds
        ``ray.init`` keyword arguments); ``"auto"`` or ``"host:port"`` joins a cluster.
        Shard i's actor needs the custom resource ``keeldb_shard_i`` when the cluster
        offers it (so it runs on the host holding its directory; ``path`` is then that
        host's path), else runs on any node. ``max_restarts`` (default -1: forever) is
        how often Ray restarts a shard's process; a shard that proves no sign of life for
        ``unavailable_timeout_s`` makes calls raise :class:`ShardUnavailableError`; at
        open, shards get ``start_timeout_s`` to start (a new worker process imports
        KeelDB, numpy and faiss, and a shard replays its WAL).
        ``durability`` and ``options`` are ``keeldb.open``'s, for every shard.

        Raises :class:`InvalidArgumentError` for a bad ``shards``,
        :class:`ShardCountMismatchError` when the database was created with another
        count, and whatever ``keeldb.open`` raises in a shard (e.g.
        :class:`DatabaseLockedError`).
        """
        if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= 4096:
            raise InvalidArgumentError(f"shards must be an integer in [1, 4096], got {shards!r}")
        if not unavailable_timeout_s > 0:
            raise InvalidArgumentError("unavailable_timeout_s must be positive")
        root = os.path.abspath(os.fspath(path))
        started = start_ray(address, ray_init)
        shard_set: ShardSet | None = None
        try:
            shard_set = ShardSet(
                root,
                shards,
                durability,
                options,
                max_restarts=max_restarts,
                unavailable_timeout_s=unavailable_timeout_s,
                max_concurrency=max_concurrency,
            )
            sdb = cls(root, shard_set, started, durability)
            # Every shard opened its directory (or raises why not).
            shard_set.call(
                range(shards),
                lambda actor, i, attempt: actor.describe.remote(),
                timeout_s=max(start_timeout_s, unavailable_timeout_s),
            )
            return sdb
        except BaseException:
            if shard_set is not None:
                shard_set.kill()
            if started:
                ray.shutdown()
            raise

    # --- lifecycle ------------------------------------------------------------------

    @property
    def shard_count(self) -> int:
        """The fixed number of shards."""
        return self.shard_set.count

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> ShardSet:
        if self._closed:
            raise ClosedError(f"sharded database {self.path} is closed")
        return self.shard_set

    def close(self) -> None:
        """Close every shard's database (each flushes and seals), stop the shard actors,
        and stop Ray if :meth:`open` started it. Idempotent. A shard that is down is
        stopped without closing: its WAL already holds every acknowledged write."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self.shard_set.call(
                range(self.shard_count),
                lambda actor, i, attempt: actor.close.remote(),
                allow_partial=True,
            )
        finally:
            self.shard_set.kill()
            if self._started_ray:
                ray.shutdown()

    def __enter__(self) -> ShardedDatabase:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<keeldb.ray.ShardedDatabase {self.path} shards={self.shard_count}>"

    def shards(self) -> list[ShardInfo]:
        """Every shard now: index, directory, host, node, pid, whether it answered, and
        its live rows. A shard that stays down is reported ``alive=False`` (after
        ``unavailable_timeout_s``), not raised."""
        shard_set = self._check_open()
        found, _ = shard_set.call(
            range(self.shard_count),
            lambda actor, i, attempt: actor.describe.remote(),
            allow_partial=True,
        )
        out = []
        for i in range(self.shard_count):
            d = found.get(i)
            if d is None:
                out.append(ShardInfo(i, shard_set.directory(i), False, None, None, None, None))
            else:
                out.append(
                    ShardInfo(i, d["directory"], True, d["node"], d["host"], d["pid"], d["rows"])
                )
        return out

    # --- collections ----------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        dim: int,
        metric: str = "cosine",
        *,
        workspace: str = "default",
        m: int = 16,
        ef_construction: int = 200,
        ef_search: int = 64,
        exist_ok: bool = False,
        quantization: str | None = None,
    ) -> ShardedCollection:
        """Create the collection on every shard (``Database.create_collection``'s
        parameters and errors). Not atomic across shards: after a failure some shards
        may hold it; ``exist_ok=True`` completes such a half-made collection."""
        shard_set = self._check_open()
        params = {
            "workspace": workspace,
            "m": m,
            "ef_construction": ef_construction,
            "ef_search": ef_search,
            "quantization": quantization,
        }

        def make(actor: Any, i: int, attempt: int) -> Any:
            # A re-sent create may find its own first attempt done.
            again = exist_ok or attempt > 0
            return actor.create_collection.remote(name, dim, metric, exist_ok=again, **params)

        infos, _ = shard_set.call(range(self.shard_count), make)
        col = ShardedCollection(self, merge_info([infos[i] for i in sorted(infos)]))
        with self._lock:
            self._collections[(workspace, name)] = col
        return col

    def get_collection(self, name: str, *, workspace: str = "default") -> ShardedCollection:
        """The collection ``workspace/name`` (CollectionNotFoundError if absent). Handles
        are cached: the first call asks every shard, later ones ask none."""
        self._check_open()
        with self._lock:
            col = self._collections.get((workspace, name))
        if col is not None:
            return col
        shard_set = self._check_open()

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.collection_call.remote(workspace, name, "info")

        infos, _ = shard_set.call(range(self.shard_count), make)
        col = ShardedCollection(self, merge_info([infos[i] for i in sorted(infos)]))
        with self._lock:
            return self._collections.setdefault((workspace, name), col)

    def list_collections(self, workspace: str | None = None) -> list[CollectionInfo]:
        """Info for every collection (of ``workspace``, or all), sorted by workspace and
        name, counts summed over the shards."""
        shard_set = self._check_open()

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.database_call.remote("list_collections", workspace)

        per_shard, _ = shard_set.call(range(self.shard_count), make)
        grouped: dict[tuple[str, str], list[CollectionInfo]] = {}
        for i in sorted(per_shard):
            for info in per_shard[i]:
                grouped.setdefault((info.workspace, info.name), []).append(info)
        return [merge_info(grouped[key]) for key in sorted(grouped)]

    def list_workspaces(self) -> list[str]:
        """Workspaces holding at least one collection on some shard, sorted."""
        shard_set = self._check_open()
        per_shard, _ = shard_set.call(
            range(self.shard_count),
            lambda actor, i, attempt: actor.database_call.remote("list_workspaces"),
        )
        return sorted({ws for names in per_shard.values() for ws in names})

    def drop_collection(self, name: str, *, workspace: str = "default") -> None:
        """Drop the collection on every shard (CollectionNotFoundError when no shard has
        it). A half-done drop (a shard down) is completed by dropping again."""
        shard_set = self._check_open()
        with self._lock:
            self._collections.pop((workspace, name), None)
        existed, _ = shard_set.call(
            range(self.shard_count),
            lambda actor, i, attempt: actor.drop_collection.remote(name, workspace, True),
        )
        if not any(existed.values()):
            # Validate the names and report as the engine does.
            shard_set.call_one(
                0, lambda actor, i, attempt: actor.drop_collection.remote(name, workspace, False)
            )
            raise KeelError(f"collection {workspace}/{name} does not exist")  # unreachable
