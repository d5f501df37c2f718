"""A sharded collection: the embedded ``Collection`` API over one collection per shard.

Writes are split by the shard of each id (:mod:`keeldb.ray.routing`) and sent in
parallel. A write touching one shard is one plain engine write there (atomic, durable).
A write touching several is staged on each (validating every item) and then committed on
each: a bad item anywhere refuses the whole batch before anything is applied, while a
shard failing *during* the commit leaves the other shards' parts applied (no cross-shard
atomicity; docs/scaling.md says what a caller may see, and that retrying is safe).

Reads are scattered to every shard with the same arguments and merged
(:mod:`keeldb.ray.merge`). Arguments the router cannot route (ids that are not a list of
strings, vectors of the wrong shape, ...) are handed whole to shard 0 to validate, so the
caller gets exactly the embedded engine's error.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any

import numpy as np
import ray

from keeldb.errors import ClosedError, InvalidArgumentError, KeelError
from keeldb.ray.errors import CrossShardTransactionError
from keeldb.ray.merge import merge_hits, merge_info, merge_pages, merge_reports, merge_stats
from keeldb.ray.results import PartialCount, PartialHits
from keeldb.ray.routing import shard_of, split_positions
from keeldb.types import CollectionInfo, CollectionStats, CompactionReport, Hit, Page, Record

if TYPE_CHECKING:
    from keeldb.ray.database import ShardedDatabase

__all__ = ["ShardedCollection"]

# A query bigger than this goes to the object store once (ray.put) and every shard reads
# it from there, instead of Ray copying it into each shard's call.
SHARE_QUERY_BYTES = 100 * 1024

Op = tuple[str, tuple[Any, ...]]
_ITEM_REF = re.compile(r"^(ids|vectors|metadata)\[(\d+)\]")


def _renumber(exc: KeelError, positions: np.ndarray) -> KeelError:
    """Rewrite a shard's ``ids[j]`` / ``vectors[j]`` / ``metadata[j]`` (an index into the
    shard's part of the batch) into the index in the caller's batch."""
    match = _ITEM_REF.match(exc.message)
    if match is None or int(match.group(2)) >= len(positions):
        return exc
    where = f"{match.group(1)}[{int(positions[int(match.group(2))])}]"
    exc.message = where + exc.message[match.end() :]
    exc.args = (exc.message,)
    return exc


class ShardedCollection:
    """One collection spread over every shard of a :class:`ShardedDatabase`.

    The methods and their contracts are those of :class:`keeldb.Collection` except where
    a docstring says otherwise: writes are atomic per shard only, ``transaction()`` is
    refused, and reads take ``allow_partial`` where noted. Thread-safe (calls are
    independent Ray calls). Obtain one from ``ShardedDatabase.create_collection`` or
    ``get_collection``.
    """

    def __init__(self, sdb: ShardedDatabase, info: CollectionInfo) -> None:
        self._sdb = sdb
        self._info = info

    # --- identity -------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The collection's name."""
        return self._info.name

    @property
    def workspace(self) -> str:
        """The collection's workspace."""
        return self._info.workspace

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._info.dim

    @property
    def metric(self) -> str:
        """Distance metric: ``cosine``, ``l2`` or ``ip``."""
        return self._info.metric

    def __repr__(self) -> str:
        return (
            f"<ShardedCollection {self.workspace}/{self.name} dim={self.dim} "
            f"metric={self.metric} shards={self._sdb.shard_count}>"
        )

    def info(self) -> CollectionInfo:
        """Parameters, live count summed over the shards, index type (``hnsw`` when any
        shard has an HNSW segment)."""
        return merge_info(list(self._on_all("info")[0].values()))

    # --- plumbing -------------------------------------------------------------------

    def _shards(self) -> Any:
        if self._sdb.closed:
            raise ClosedError(f"sharded database {self._sdb.path} is closed")
        return self._sdb.shard_set

    def _on_all(
        self, method: str, *args: Any, allow_partial: bool = False, **kwargs: Any
    ) -> tuple[dict[int, Any], list[int]]:
        shards = self._shards()
        ws, name = self.workspace, self.name

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.collection_call.remote(ws, name, method, *args, **kwargs)

        return shards.call(range(shards.count), make, allow_partial=allow_partial)  # type: ignore[no-any-return]

    def _on_one(self, shard: int, method: str, *args: Any, **kwargs: Any) -> Any:
        ws, name = self.workspace, self.name

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.collection_call.remote(ws, name, method, *args, **kwargs)

        return self._shards().call_one(shard, make)

    def _route(self, ids: Any) -> dict[int, np.ndarray] | None:
        """Positions of the batch's items by shard, or None when ``ids`` is not a list of
        strings (then shard 0 validates the whole call)."""
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
            return None
        if not all(map(isinstance, ids, repeat(str))):
            return None
        count = self._shards().count
        return split_positions(shard_of(ids, count), count)

    def _refuse(self, ops: list[Op]) -> KeelError:
        """Stage ``ops`` (which the router could not split) on shard 0 and roll back:
        raises the engine's error for them. Returns a generic error for the caller to
        raise if shard 0 found nothing wrong."""
        token = uuid.uuid4().hex
        self._stage({0: ops}, {}, token)
        self._rollback(token, [0])
        return InvalidArgumentError("these arguments cannot be split across shards")

    def _stage(
        self, parts: dict[int, list[Op]], positions: dict[int, np.ndarray], token: str
    ) -> None:
        ws, name = self.workspace, self.name

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.prepare.remote(token, ws, name, parts[i])

        try:
            self._shards().call(parts, make)
        except KeelError as exc:
            self._rollback(token, list(parts))
            shard = getattr(exc, "shard_of_origin", None)
            if shard is not None and shard in positions:
                raise _renumber(exc, positions[shard]) from None
            raise

    def _rollback(self, token: str, shards: list[int]) -> None:
        for i in shards:  # fire and forget: a lost staged transaction expires anyway
            self._shards().actors[i].rollback.remote(token)

    def _apply_direct(self, shard: int, ops: list[Op], positions: np.ndarray | None) -> int:
        """Send one shard's part as plain engine writes; returns how many ids it deleted."""
        deleted = 0
        for op, args in ops:
            try:
                result = self._on_one(shard, op, *args)
            except KeelError as exc:
                if positions is not None and getattr(exc, "shard_of_origin", None) == shard:
                    raise _renumber(exc, positions) from None
                raise
            if op == "delete":
                deleted += int(result)
        return deleted

    def _write(self, parts: dict[int, list[Op]], positions: dict[int, np.ndarray]) -> int:
        """Apply every shard's part; returns the number of ids deleted (delete ops)."""
        if len(parts) == 1:
            ((shard, ops),) = parts.items()
            return self._apply_direct(shard, ops, positions[shard])
        token = uuid.uuid4().hex
        self._stage(parts, positions, token)

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.commit.remote(token)

        results, _ = self._shards().call(parts, make)
        deleted = 0
        for shard, counts in results.items():
            if counts is None:  # the shard restarted after staging: send its part again
                deleted += self._apply_direct(shard, parts[shard], positions[shard])
            else:
                deleted += int(counts["deleted"])
        return deleted

    def _share(self, queries: Any) -> Any:
        """``queries`` as a float32 array, in the object store when large (one copy read
        by every shard); unchanged when not numeric (the shards raise the engine's error)."""
        try:
            arr = np.asarray(queries, dtype=np.float32)
        except (TypeError, ValueError):
            return queries
        if arr.nbytes > SHARE_QUERY_BYTES:
            return ray.put(arr)
        return arr

    # --- writes ---------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Insert or replace records (``Collection.upsert``). The whole batch is
        validated on every shard before any shard applies its part; each shard's part is
        then atomic and durable there. Returns when every part is acknowledged.

        Raises the engine's errors for bad input (nothing applied);
        :class:`ShardUnavailableError` when a shard stays down (other shards' parts may
        be applied: retrying the same upsert is safe).
        """
        routed = self._route(ids)
        arr: np.ndarray | None = None
        if routed is not None:
            try:
                arr = np.asarray(vectors, dtype=np.float32)
            except (TypeError, ValueError):
                arr = None
            n = len(ids)
            if arr is not None and arr.ndim == 1 and n == 1 and arr.shape[0] == self.dim:
                arr = arr.reshape(1, -1)
            meta_ok = metadata is None or (
                isinstance(metadata, Sequence)
                and not isinstance(metadata, str | bytes | dict)
                and len(metadata) == n
            )
            if arr is None or arr.ndim != 2 or arr.shape[0] != n or not meta_ok:
                routed = None
        if routed == {}:  # an empty batch: whatever the engine does with one
            self._on_one(0, "upsert", ids, vectors, metadata)
            return
        if routed is None or arr is None:
            raise self._refuse([("upsert", (ids, vectors, metadata))])
        parts: dict[int, list[Op]] = {}
        for shard, pos in routed.items():
            where = pos.tolist()
            part_meta = None if metadata is None else list(map(metadata.__getitem__, where))
            parts[shard] = [("upsert", (list(map(ids.__getitem__, where)), arr[pos], part_meta))]
        self._write(parts, routed)

    def delete(self, ids: Sequence[str] | None = None, *, filter: Any = None) -> int:
        """Delete by ``ids`` or by ``filter`` (exactly one); returns how many existed.

        By ids: like :meth:`upsert`, validated everywhere first, then applied per shard.
        By filter: every shard deletes its matching records (each atomically). After a
        failure, retrying is safe; the retried call's count then only counts the ids
        that still existed.
        """
        if ids is None and filter is not None:
            return sum(self._on_all("delete", filter=filter)[0].values())
        if ids is None or filter is not None:
            return int(self._on_one(0, "delete", ids, filter=filter))  # the engine's error
        routed = self._route(ids)
        if routed is None or not routed:
            if routed == {}:
                return int(self._on_one(0, "delete", ids))
            raise self._refuse([("delete", (ids,))])
        parts: dict[int, list[Op]] = {
            shard: [("delete", (list(map(ids.__getitem__, pos.tolist())),))]
            for shard, pos in routed.items()
        }
        return self._write(parts, routed)

    def transaction(self) -> Any:
        """Refused: writes are atomic per shard only, and a transaction spanning shards
        would have to be faked. Raises :class:`CrossShardTransactionError`."""
        raise CrossShardTransactionError(
            f"sharded collection {self.workspace}/{self.name}: transactions across shards "
            "are not supported (each shard's part of a write is atomic, the whole is not; "
            "see docs/scaling.md). Use upsert/delete, which are safe to retry."
        )

    # --- reads ----------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records for ``ids`` (None where absent), aligned with ``ids``."""
        routed = self._route(ids)
        if routed is None:
            self._on_one(0, "get", ids)  # raises the engine's error
            raise InvalidArgumentError("ids cannot be split across shards")
        if not routed:
            return list(self._on_one(0, "get", ids))
        shards = self._shards()
        parts = {shard: list(map(ids.__getitem__, pos.tolist())) for shard, pos in routed.items()}
        ws, name = self.workspace, self.name

        def make(actor: Any, i: int, attempt: int) -> Any:
            return actor.collection_call.remote(ws, name, "get", parts[i])

        try:
            results, _ = shards.call(parts, make)
        except KeelError as exc:
            shard = getattr(exc, "shard_of_origin", None)
            if shard is not None and shard in routed:
                raise _renumber(exc, routed[shard]) from None
            raise
        out = np.empty(len(ids), dtype=object)
        for shard, records in results.items():
            column = np.empty(len(records), dtype=object)
            column[:] = records
            out[routed[shard]] = column
        return list(out.tolist())

    def count(self, filter: Any = None, *, allow_partial: bool = False) -> int:
        """Live records (matching ``filter``), summed over the shards. With
        ``allow_partial`` a :class:`PartialCount` over the shards that answered."""
        results, missing = self._on_all("count", filter, allow_partial=allow_partial)
        total = sum(results.values())
        return PartialCount(total, tuple(missing)) if allow_partial else total

    def search(
        self,
        vector: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        allow_partial: bool = False,
    ) -> list[Hit]:
        """The k nearest records (``Collection.search``): every shard searches with the
        same k, ef and filter; the answers merge by (distance, id). ``exact=True`` gives
        the exact global top k. With ``allow_partial`` a shard that stays down is left
        out instead of raising :class:`ShardUnavailableError`, and the answer is a
        :class:`PartialHits` naming the missing shards."""
        results, missing = self._on_all(
            "search",
            self._share(vector),
            k,
            ef=ef,
            filter=filter,
            exact=exact,
            with_metadata=with_metadata,
            allow_partial=allow_partial,
        )
        parts = [[results[i]] for i in sorted(results)]
        hits = merge_hits(parts, k)[0] if parts else []
        return PartialHits(hits, tuple(missing)) if allow_partial else hits

    def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        allow_partial: bool = False,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` (q, dim); the queries go to the
        object store once when large. ``allow_partial`` as in :meth:`search`."""
        queries = self._share(vectors)
        results, missing = self._on_all(
            "search_batch",
            queries,
            k,
            ef=ef,
            filter=filter,
            exact=exact,
            with_metadata=with_metadata,
            allow_partial=allow_partial,
        )
        if results:
            hits = merge_hits([results[i] for i in sorted(results)], k)
        else:  # allow_partial and no shard answered: one empty list per query
            hits = [[] for _ in range(len(np.asarray(vectors)))]
        return PartialHits(hits, tuple(missing)) if allow_partial else hits

    def scan(self, filter: Any = None, limit: int = 100, cursor: str | None = None) -> Page:
        """One page of live records (matching ``filter``) in id order, as
        ``Collection.scan``: every shard returns its own first ``limit`` ids after
        ``cursor``, and the pages merge by id. ``next_cursor`` is the last id returned
        (None on the last page), so paging visits each record exactly once."""
        pages = self._on_all("scan", filter, limit, cursor)[0]
        return merge_pages([pages[i] for i in sorted(pages)], limit)

    # --- upkeep ---------------------------------------------------------------------

    def flush(self) -> None:
        """Durability barrier on every shard."""
        self._on_all("flush")

    def compact(self) -> CompactionReport:
        """``Collection.compact`` on every shard in parallel; counts summed, duration of
        the slowest shard."""
        reports = self._on_all("compact")[0]
        return merge_reports([reports[i] for i in sorted(reports)])

    def stats(self) -> CollectionStats:
        """``Collection.stats`` summed over the shards (segments listed shard by shard;
        segment ids are per shard)."""
        stats = self._on_all("stats")[0]
        return merge_stats([stats[i] for i in sorted(stats)])
