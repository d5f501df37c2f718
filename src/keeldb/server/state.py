"""What the handlers share: the database, the settings, the worker pools, the metrics.

**Engine work runs off the event loop.** Vector decoding, the engine call and JSON encoding
of the answer run in one thread-pool hop (:meth:`ServerState.run_json`); faiss and BLAS
release the GIL there, so concurrent searches use every core while the loop keeps
accepting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, TypeVar

import orjson
from starlette.responses import Response

from keeldb.server.config import ServerConfig
from keeldb.server.metrics import CollectionGauge, RequestMetrics
from keeldb.server.threads import worker_initializer

__all__ = ["Pool", "ServerState"]

log = logging.getLogger("keeldb.server")

T = TypeVar("T")
Pool = Literal["read", "write"]


class ServerState:
    """What the handlers share: the database, the settings, the worker pools, the metrics."""

    def __init__(self, db: Any, config: ServerConfig) -> None:
        self.db = db
        self.config = config
        self.metrics = RequestMetrics()
        self._pools: dict[str, ThreadPoolExecutor] = {}

    def pool(self, kind: Pool) -> ThreadPoolExecutor:
        """The ``read`` or ``write`` worker pool, (re)created on demand: an app may see
        several lifespans (test clients start and stop it per use), and each shutdown
        drains the pools.

        Reads (searches, gets, counts) are CPU work: their pool has about one thread per
        core, since more threads only contend for the GIL. Writes mostly wait for fsync
        (and compactions run long): they get their own pool so they never hold up reads.
        """
        executor = self._pools.get(kind)
        if executor is None:
            size = self.config.threads if kind == "read" else self.config.write_threads
            executor = self._pools[kind] = ThreadPoolExecutor(
                max_workers=size,
                thread_name_prefix=f"keeldb-{kind}",
                initializer=worker_initializer,
                initargs=(self.config.threads_per_request,),
            )
        return executor

    def collection(self, ws: str, name: str) -> Any:
        """The open collection ``name`` of workspace ``ws`` (raises
        :class:`~keeldb.errors.CollectionNotFoundError`; call it in a worker)."""
        return self.db.get_collection(name, workspace=ws)

    async def run(self, fn: Callable[[], T], pool: Pool = "read") -> T:
        """Run ``fn()`` in the ``pool`` worker pool and await its result."""
        return await asyncio.get_running_loop().run_in_executor(self.pool(pool), fn)

    async def run_json(self, fn: Callable[[], Any], pool: Pool = "read") -> Response:
        """Like :meth:`run`, then encode the result as the JSON response, also off-loop."""

        def work() -> bytes:
            # orjson: ~5x faster than json for a search's hits (8% of the server's GIL
            # time under load); non-str keys as json would write them (stats' levels).
            return orjson.dumps(fn(), option=orjson.OPT_NON_STR_KEYS)

        body = await self.run(work, pool)
        return Response(body, media_type="application/json")

    def collection_gauges(self) -> list[CollectionGauge]:
        """Sizes of every collection, for /metrics (runs engine calls: use a worker)."""
        gauges = []
        for info in self.db.list_collections():
            try:
                stats = self.collection(info.workspace, info.name).stats()
            except Exception:  # a collection dropped mid-scrape is not worth a failed scrape
                log.debug("stats failed for %s/%s", info.workspace, info.name, exc_info=True)
                continue
            gauges.append(
                CollectionGauge(
                    info.workspace,
                    info.name,
                    stats.live_count,
                    stats.deleted_count,
                    stats.disk_bytes,
                    stats.wal_bytes,
                    stats.memory_bytes,
                )
            )
        return gauges

    def shutdown(self, close_db: bool) -> None:
        """Wait for queued engine work, then (if ``close_db``) flush and close the database."""
        pools, self._pools = self._pools, {}
        for executor in pools.values():
            executor.shutdown(wait=True)
        if not close_db:
            return
        try:
            for info in self.db.list_collections():
                with contextlib.suppress(Exception):
                    self.collection(info.workspace, info.name).flush()
        finally:
            self.db.close()
