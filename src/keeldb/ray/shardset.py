"""The router's side of the shards: starting Ray, creating the shard actors, and calling
them with retries, liveness probes and typed errors.

Every call the router makes is idempotent in effect (reads; upserts and deletes by id;
deletes by filter; compaction; flush), so a call that fails because the actor's process
died is sent again to the restarted actor. A shard is *unavailable* once it has gone
``unavailable_timeout_s`` without proving alive: neither answering the call nor a
``ping`` probe sent while the call is outstanding (so a slow compaction on a live shard
is waited for, however long it takes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import ray
import ray.exceptions

from keeldb.errors import KeelError
from keeldb.ray.actor import ShardServer
from keeldb.ray.errors import ShardingError, ShardUnavailableError
from keeldb.ray.layout import shard_directory

__all__ = ["ShardSet", "loopback_only", "shard_resource", "start_ray"]

# Errors meaning "the actor's process is gone (maybe restarting)", not "the call failed".
_ACTOR_GONE: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        getattr(ray.exceptions, "RayActorError", None),
        getattr(ray.exceptions, "ActorUnavailableError", None),
        getattr(ray.exceptions, "ObjectLostError", None),
        getattr(ray.exceptions, "OwnerDiedError", None),
        getattr(ray.exceptions, "WorkerCrashedError", None),
    )
    if isinstance(cls, type)
)

_PROBE_FAILED: tuple[type[BaseException], ...] = (*_ACTOR_GONE, ray.exceptions.RayTaskError)

_SLOW_PATH: tuple[type[BaseException], ...] = (ray.exceptions.GetTimeoutError, *_PROBE_FAILED)

PROBE_INTERVAL_S = 0.5
RETRY_PAUSE_S = 0.05
# Placement resource amount: small, so the resource pins a shard to its host without
# limiting how many databases may use that host's shard.
SHARD_RESOURCE_AMOUNT = 0.001


def loopback_only() -> None:
    """Make Ray started from this process (``ray.init``, ``ray.cluster_utils.Cluster``)
    bind every listener to 127.0.0.1 and advertise 127.0.0.1 as the node address.

    ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough with Ray 2.60: the
    loopback address is replaced by the host's address, and the gRPC servers then listen
    on every interface. Ray keeps a node local-only when "clusters are disabled"
    (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, read at import); this sets that variable
    for the processes Ray starts and the flag of the already-imported module. The tests
    check the result (no Ray listener on a non-loopback address), so a Ray version that
    changes this fails them instead of silently listening on the network.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def start_ray(address: str | None, init_options: dict[str, Any] | None) -> bool:
    """Connect to Ray; returns whether this call started a local instance (which the
    caller then shuts down on close).

    ``address=None``: reuse this process's Ray connection if there is one, else start a
    local instance bound to 127.0.0.1 (:func:`loopback_only`) with usage statistics off
    and no dashboard. ``"auto"`` or ``"host:port"``: join that cluster. ``init_options``
    go to ``ray.init`` as extra keyword arguments (e.g. ``num_cpus``, ``_temp_dir``).
    """
    if ray.is_initialized():
        return False
    opts = dict(init_options or {})
    if address is None:
        # Nothing may leave the machine: no usage report, no dashboard, loopback only.
        loopback_only()
        opts.setdefault("_node_ip_address", "127.0.0.1")
        opts.setdefault("include_dashboard", False)
        opts.setdefault("num_cpus", min(2, os.cpu_count() or 1))
        opts.setdefault("log_to_driver", False)
        ray.init(address="local", **opts)
        return True
    ray.init(address=address, **opts)
    return False


def shard_resource(index: int) -> str:
    """The custom resource that pins shard ``index`` to the host holding its directory."""
    return f"keeldb_shard_{index}"


class ShardSet:
    """The actors of one sharded database, and the retrying calls to them."""

    def __init__(
        self,
        root: str,
        count: int,
        durability: str,
        options: dict[str, Any],
        *,
        max_restarts: int,
        unavailable_timeout_s: float,
        max_concurrency: int,
    ) -> None:
        self.root = root
        self.count = count
        self.unavailable_timeout_s = unavailable_timeout_s
        offered = ray.cluster_resources()  # type: ignore[no-untyped-call]
        remote_cls = ray.remote(ShardServer)
        self.actors: list[Any] = []
        self.pinned: list[bool] = []
        for i in range(count):
            opts: dict[str, Any] = {
                "num_cpus": 0,
                "max_restarts": max_restarts,
                "max_concurrency": max_concurrency,
            }
            key = shard_resource(i)
            if key in offered:
                opts["resources"] = {key: SHARD_RESOURCE_AMOUNT}
            self.pinned.append(key in offered)
            self.actors.append(
                remote_cls.options(**opts).remote(root, i, count, durability, options)
            )

    def directory(self, index: int) -> str:
        """Shard ``index``'s directory (on the host that runs it)."""
        return shard_directory(self.root, index)

    def call(
        self,
        shards: Iterable[int],
        make: Callable[[Any, int, int], Any],
        *,
        allow_partial: bool = False,
        timeout_s: float | None = None,
    ) -> tuple[dict[int, Any], list[int]]:
        """Call every shard in ``shards`` in parallel and wait for all.

        ``make(actor, index, attempt)`` sends the call (``actor.method.remote(...)``) and
        returns its ObjectRef; ``attempt`` is 0, then 1, 2, ... for re-sends after the
        actor's process died. Returns ``(results by shard, unavailable shards)``; the
        second list is empty unless ``allow_partial`` (otherwise the first unavailable
        shard raises :class:`ShardUnavailableError`). ``timeout_s`` replaces
        ``unavailable_timeout_s`` for this call (e.g. while shards start). A KeelDB
        error raised by a shard is re-raised here as itself (the first, in shard order,
        after every shard answered); anything else a shard raises becomes a
        :class:`ShardingError` naming it.
        """
        wanted = list(shards)
        refs = {i: make(self.actors[i], i, 0) for i in wanted}
        try:
            # The common case: every shard answers promptly.
            values = ray.get([refs[i] for i in wanted], timeout=PROBE_INTERVAL_S)
            return dict(zip(wanted, values, strict=True)), []
        except _SLOW_PATH:
            pass  # sort it out shard by shard (finished calls answer at once)
        results: dict[int, Any] = {}
        missing: list[int] = []
        errors: list[KeelError] = []
        for i in wanted:
            try:
                results[i] = self._await(i, refs[i], make, timeout_s)
            except ShardUnavailableError:
                if not allow_partial:
                    raise
                missing.append(i)
            except KeelError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        return results, missing

    def call_one(self, index: int, make: Callable[[Any, int, int], Any]) -> Any:
        """:meth:`call` on one shard; returns its result."""
        return self.call([index], make)[0][index]

    def _await(
        self,
        index: int,
        ref: Any,
        make: Callable[[Any, int, int], Any],
        timeout_s: float | None,
    ) -> Any:
        actor = self.actors[index]
        limit = self.unavailable_timeout_s if timeout_s is None else timeout_s
        # The clock starts when this shard is awaited, not with the call: shards are
        # awaited one after another, and a live shard behind a slow one is not down.
        last_alive = time.monotonic()
        attempt = 0
        probe: Any = None
        while True:
            ready, _ = ray.wait([ref], timeout=PROBE_INTERVAL_S)
            now = time.monotonic()
            if ready:
                try:
                    return ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise self._translate(index, exc) from None
                except _ACTOR_GONE:
                    if now - last_alive > limit:
                        raise self._unavailable(index, limit) from None
                    time.sleep(RETRY_PAUSE_S)
                    attempt += 1
                    ref = make(actor, index, attempt)
                    continue
            if probe is None:
                probe = actor.ping.remote()
            done, _ = ray.wait([probe], timeout=0)
            if done:
                try:
                    ray.get(probe)
                    last_alive = now
                except _PROBE_FAILED:
                    pass
                probe = None
            if now - last_alive > limit:
                raise self._unavailable(index, limit)

    def _unavailable(self, index: int, limit: float) -> ShardUnavailableError:
        where = " (pinned by resource " + shard_resource(index) + ")" if self.pinned[index] else ""
        return ShardUnavailableError(
            f"shard {index} ({self.directory(index)}){where} did not answer for "
            f"{limit:g} s: its actor is down or restarting",
            shard=index,
        )

    def _translate(self, index: int, exc: Any) -> KeelError:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, KeelError):
            # Which shard raised it: the router renumbers batch positions with this.
            cause.shard_of_origin = index  # type: ignore[attr-defined]
            return cause
        what = f"{type(cause).__name__}: {cause}" if cause is not None else str(exc)
        return ShardingError(f"shard {index} failed: {what}", shard=index)

    def kill(self) -> None:
        """Stop every actor process (no restart)."""
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                pass
