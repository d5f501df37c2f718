"""A collection: the public API over one directory's WAL, memtables and segments.

Write path: validate the whole batch -> (write lock) assign a sequence number, append the
WAL record, apply it to the memtable and tombstones -> (no lock) fsync with group commit
-> acknowledge. Read path: take the current :class:`State` snapshot, search every unit,
merge the top k, fetch metadata for the winners only. Sealing and merging run in the
background (:mod:`keeldb.engine.maintenance`); recovery is :mod:`keeldb.engine.recovery`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson

from keeldb.engine.memtable import Memtable
from keeldb.engine.segment import Segment, UnitResult
from keeldb.engine.state import Options, State, make_memtable
from keeldb.engine.validation import (
    check_k,
    validate_ids,
    validate_metadata,
    validate_query,
    validate_vectors,
)
from keeldb.errors import BusyError, ClosedError, InvalidArgumentError, KeelError, StorageError
from keeldb.index.exact import top_k
from keeldb.storage.records import Batch, DeleteOp, UpsertOp, encode_batch
from keeldb.storage.segment_files import id_hashes
from keeldb.types import (
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    InsertStats,
    Page,
    Record,
    SearchStats,
    SegmentStats,
)

if TYPE_CHECKING:
    from keeldb.engine.maintenance import Maintainer
    from keeldb.engine.transaction import Transaction
    from keeldb.engine.versions import VersionSet

log = logging.getLogger("keeldb")

__all__ = ["Collection"]

Location = tuple[Memtable | Segment, int]


class Collection:
    """A named set of vectors with string ids and JSON metadata. Thread-safe.

    Obtain one from :meth:`keeldb.Database.create_collection` or ``get_collection``;
    it stays usable until the database is closed or the collection dropped
    (:class:`ClosedError` afterwards).
    """

    def __init__(self, directory: str, options: Options, versions: VersionSet) -> None:
        """Built by :func:`keeldb.engine.recovery.open_collection` (the factory), which
        replays the WAL through :meth:`replay` and then calls :meth:`start`."""
        self.directory = directory
        self.config = versions.config
        self.options = options
        self.fs = options.fs
        self.versions = versions
        self._spare: Memtable | None = None
        self._closed = False
        self._damaged: KeelError | None = None  # set by the scrubber on bad payloads
        self._search_callbacks: list[Callable[[SearchStats], None]] = []
        self._insert_callbacks: list[Callable[[InsertStats], None]] = []
        self._maintainer: Maintainer | None = None
        self.recovery_report: dict[str, Any] = {}

    @property
    def _state(self) -> State:
        return self.versions.state

    def _new_memtable(self) -> Memtable:
        """A fresh memtable: the pre-faulted spare when one is ready (see
        :meth:`make_spare`), else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            return spare
        return make_memtable(self.config, self.options)

    def make_spare(self) -> None:
        """Prepare the next memtable with its pages already touched (background thread).

        On this kind of virtual machine the first write to a fresh page costs ~100x a
        warm copy (measured: ~10 ms per 1.5 MB batch), so a writer filling a brand-new
        memtable pays mostly page faults; faulting the spare's pages in the background
        (numpy releases the GIL) takes that off the write path.
        """
        if self._spare is None:
            mem = make_memtable(self.config, self.options)
            mem.prefault()
            self._spare = mem

    def drop_spare(self) -> None:
        """Release the spare memtable (at shutdown)."""
        self._spare = None

    # --- lifecycle (called by recovery, the factory) ----------------------------------------

    def replay(self, batch: Batch, seq: int) -> None:
        """Apply a WAL record read back at open (before :meth:`start`). A full memtable is
        frozen (sealed by the worker once it starts), so replay stays bounded."""
        self._apply(batch)
        self.versions.last_seq = seq
        state = self.versions.state
        state.active.last_seq = seq
        if state.active.n >= self.options.memtable_rows:
            state.active.frozen = True
            with self.versions.lock:
                self.versions.install(
                    State((*state.memtables, self._new_memtable()), state.segments)
                )

    def start(self, maintainer: Maintainer) -> None:
        """Start logging and upkeep after replay: a new WAL file, the maintenance worker,
        and removal of files no manifest names (a seal or merge cut short)."""
        self.versions.open_wal()
        self._maintainer = maintainer
        with maintainer.lock:  # the worker may start a seal: not before this cleanup
            self.versions.remove_obsolete(at_open=True)
        if self._state.active.n >= self.options.memtable_rows:
            with self._locked_for_write():
                self.freeze()

    @contextmanager
    def pinned_files(self) -> Iterator[list[tuple[str, int | None]]]:
        """Hold upkeep (no seal, merge or checkpoint commits, so no file is removed or
        replaced) and yield the files of a consistent copy (see
        :meth:`VersionSet.snapshot`). Writes go on meanwhile; a merge in progress is
        waited for."""
        self._check_open()
        maintainer = self._maintainer
        assert maintainer is not None
        with maintainer.merge_lock, maintainer.lock:
            _manifest, files = self.versions.snapshot()
            yield files

    def mark_damaged(self, exc: KeelError) -> None:
        """Refuse every further call with ``exc`` (damaged data found after open): never
        answer from data that failed verification."""
        self._damaged = exc

    # --- identity -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def workspace(self) -> str:
        return self.config.workspace

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def metric(self) -> str:
        return self.config.metric

    def __repr__(self) -> str:
        return f"<Collection {self.workspace}/{self.name} dim={self.dim} metric={self.metric}>"

    def info(self) -> CollectionInfo:
        """Name, workspace, parameters, live count and current index type."""
        c = self.config
        return CollectionInfo(
            c.name,
            c.workspace,
            c.dim,
            c.metric,
            self.count(),
            c.m,
            c.ef_construction,
            c.ef_search,
            c.created_at,
            self._index_type(self._state),
        )

    # --- guards -----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"collection {self.workspace}/{self.name} is closed")
        if self._damaged is not None:
            raise self._damaged

    def _check_writable(self) -> None:
        self._check_open()
        failed = self.versions.failed
        if failed is not None:
            raise StorageError(
                f"collection {self.workspace}/{self.name} refuses writes after a storage "
                f"failure ({failed}); reopen the database"
            )

    # --- writes -------------------------------------------------------------------------

    def upsert(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Insert records, or replace those whose id exists (all or nothing).

        ``vectors`` is (n, dim) array-like; ``metadata`` a list aligned with ids (or None).
        For an existing id, metadata ``None`` keeps its old metadata and ``{}`` clears it.
        The whole batch is validated first (ids, dimensions, finite values, zero vectors
        under cosine, JSON metadata): on error nothing is written. Returns once the batch
        is durable per the database's durability mode.
        """
        op = self._upsert_op(ids, vectors, metadata)
        if not op.ids:  # an empty batch is a no-op: no WAL record (issue 17)
            self._check_writable()
            return
        self._write([op])

    def _upsert_op(self, ids: Any, vectors: Any, metadata: Any) -> UpsertOp:
        id_list = validate_ids(ids)
        vecs = validate_vectors(vectors, len(id_list), self.dim, self.metric)
        metas, meta_json = validate_metadata(metadata, len(id_list))
        return UpsertOp(id_list, vecs, metas, meta_json)

    def delete(self, ids: Sequence[str] | None = None, *, filter: Any = None) -> int:
        """Delete records by ``ids`` or by ``filter`` (exactly one); returns how many
        existed. Deletes by filter are logged as the resolved ids."""
        if (ids is None) == (filter is None):
            raise InvalidArgumentError("delete takes exactly one of ids or filter")
        if ids is not None:
            id_list = validate_ids(ids, unique=False)
            if not id_list:  # an empty batch is a no-op: no WAL record (issue 17)
                self._check_writable()
                return 0
            return self._write([DeleteOp(list(dict.fromkeys(id_list)))])["deleted"]
        flt = self._compile(filter)
        with self._locked_for_write():
            matched = self._matching_ids(self._state, flt)
            if not matched:
                return 0
            return self._write([DeleteOp(matched)], locked=True)["deleted"]

    def update(
        self,
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]],
        *,
        mode: str = "merge",
    ) -> list[str]:
        """Change the metadata of existing records, keeping their vectors (all or nothing).

        ``mode="merge"`` (default, as Chroma's ``update``): each given key is set, and a
        key given as None is removed; other keys are kept. ``mode="replace"``: the record's
        metadata becomes exactly the given dict. Ids that do not exist are not created:
        they are returned (the others are updated). Durable per the durability mode.
        """
        if mode not in ("merge", "replace"):
            raise InvalidArgumentError(f"mode must be 'merge' or 'replace', got {mode!r}")
        id_list = validate_ids(ids)
        metas, _ = validate_metadata(metadata, len(id_list))
        if any(m is None for m in metas):
            raise InvalidArgumentError("update takes a metadata dict for every id")
        self._check_writable()
        with self._locked_for_write():
            records = self.get(id_list)
            found = [i for i, rec in enumerate(records) if rec is not None]
            missing = [id_list[i] for i, rec in enumerate(records) if rec is None]
            if not found:
                return missing
            new_metas: list[dict[str, Any] | None] = []
            for i in found:
                given = cast(dict[str, Any], metas[i])
                if mode == "replace":
                    new_metas.append(given)
                    continue
                old = cast(Record, records[i]).metadata
                merged = {**old, **given}
                new_metas.append({k: v for k, v in merged.items() if v is not None})
            op = UpsertOp(
                [id_list[i] for i in found],
                np.stack([cast(Record, records[i]).vector for i in found]),
                new_metas,
            )
            self._write([op], locked=True)
        return missing

    def transaction(self) -> Transaction:
        """A context manager staging upserts and deletes, applied all or nothing on exit
        (one WAL record); an exception inside the block discards everything."""
        from keeldb.engine.transaction import Transaction

        self._check_writable()
        return Transaction(self)

    def _locked_for_write(self) -> AbstractContextManager[None]:
        return self.versions.locked()

    def _wait_for_backlog(self) -> None:
        """Back-pressure: wait while too many memtables await sealing (BusyError on timeout)."""
        deadline = time.monotonic() + self.options.write_timeout_s
        while len(self._state.memtables) > self.options.max_frozen_memtables + 1:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusyError(
                    f"{len(self._state.memtables) - 1} memtables await sealing; "
                    f"write timed out after {self.options.write_timeout_s} s"
                )
            self.versions.backlog.wait(min(remaining, 0.5))
            self._check_writable()

    def _write(self, batch: Batch, *, locked: bool = False) -> dict[str, int]:
        t0 = time.perf_counter()
        self._check_writable()
        with self._locked_for_write():
            self._check_writable()
            if not locked:
                self._wait_for_backlog()
            self._resolve_kept_metadata(batch)
            seq, wal, end = self.versions.log(encode_batch(batch))
            counts = self._apply(batch)
            self._state.active.last_seq = seq
            wal_bytes = wal.size_bytes
            active_rows = self._state.active.n
            if active_rows >= self.options.memtable_rows:
                self.freeze()
            elif (
                self._spare is None
                and self._maintainer is not None
                and active_rows >= self.options.memtable_rows // 4
            ):
                self._maintainer.want_spare()
        if self.options.durability == "fsync":
            self.versions.sync(wal, end)
        if self._insert_callbacks:
            stats = InsertStats(
                time.perf_counter() - t0,
                counts["upserted"],
                counts["deleted"],
                counts["replaced"],
                wal_bytes,
            )
            for cb in list(self._insert_callbacks):
                cb(stats)
        return counts

    def _resolve_kept_metadata(self, batch: Batch) -> None:
        """Replace metadata None ("keep the existing record's") by the metadata it keeps,
        before the batch is logged (write lock held).

        A WAL record must not depend on state that a maintenance commit can persist ahead
        of it: a merge or vacuum writes the old row's tombstone while the record is still
        past the checkpoint, and replay after a crash then found no live old row and stored
        ``{}``. Resolved records replay to the same result whatever is already persisted.
        """
        effect: dict[str, dict[str, Any] | None] = {}  # earlier ops of the batch (None: deleted)
        for op in batch:
            if isinstance(op, DeleteOp):
                effect.update(dict.fromkeys(op.ids))
                continue
            todo = [i for i, meta in enumerate(op.metadata) if meta is None]
            if todo:
                lookup = [op.ids[i] for i in todo if op.ids[i] not in effect]
                found = dict(zip(lookup, self._locate(self._state, lookup), strict=True))
                for i in todo:
                    id_ = op.ids[i]
                    loc = found.get(id_)
                    if id_ in effect:
                        kept = effect[id_]
                    else:
                        kept = None if loc is None else _unit_metadata(*loc)
                    op.metadata[i] = {} if kept is None else kept
                op.metadata_json = None  # encoded again, with the resolved metadata
            effect.update(zip(op.ids, op.metadata, strict=True))

    def _apply(self, batch: Batch) -> dict[str, int]:
        """Apply a logged batch to memory (write lock held). Cannot fail on valid input."""
        counts = {"upserted": 0, "deleted": 0, "replaced": 0}
        for op in batch:
            if isinstance(op, UpsertOp):
                hashes = id_hashes(op.ids)  # kept by the memtable: the seal reuses them
                locations = self._locate(self._state, op.ids, hashes)
                metas: list[dict[str, Any]] = []
                for i, loc in enumerate(locations):
                    meta = op.metadata[i]
                    if loc is not None:
                        unit, row = loc
                        if meta is None:
                            meta = _unit_metadata(unit, row)
                        _kill(unit, row)
                        counts["replaced"] += 1
                    metas.append({} if meta is None else meta)
                # Old rows die before the new ones are published: a concurrent search may
                # miss a record being replaced, but never sees it twice.
                self._state.active.append(op.ids, op.vectors, metas, hashes)
                counts["upserted"] += len(op.ids)
            else:
                for loc in self._locate(self._state, op.ids):
                    if loc is not None:
                        _kill(*loc)
                        counts["deleted"] += 1
        return counts

    def freeze(self) -> None:
        """Freeze the active memtable, start a new one and a new WAL file, and wake the
        sealer. Caller holds the write lock."""
        if self.versions.freeze(self._new_memtable()) and self._maintainer is not None:
            self._maintainer.wake()

    def _locate(
        self, state: State, ids: list[str], hashes: np.ndarray | None = None
    ) -> list[Location | None]:
        """Where each id currently lives (live rows only); ``hashes`` are
        ``id_hashes(ids)`` when the caller has them."""
        found: list[Location | None] = [None] * len(ids)
        missing = list(range(len(ids)))
        for mem in reversed(state.memtables):
            if not missing:
                break
            get = mem.row_of.get
            dead = mem.dead
            still: list[int] = []
            for i in missing:
                row = get(ids[i])
                if row is not None and not dead[row]:
                    found[i] = (mem, row)
                else:
                    still.append(i)
            missing = still
        if missing and state.segments:
            sub = [ids[i] for i in missing]
            sub_hashes = id_hashes(sub) if hashes is None else hashes[missing]
            for seg in reversed(state.segments):
                for j, row in seg.locate(sub, sub_hashes).items():
                    if found[missing[j]] is None:
                        found[missing[j]] = (seg, row)
        return found

    # --- reads ---------------------------------------------------------------------------

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """Records for ``ids`` (None where absent), aligned with ``ids``. Vectors and
        metadata are copies."""
        self._check_open()
        id_list = validate_ids(ids, unique=False)
        with self._locked_for_write():
            locations = self._locate(self._state, id_list)
            out: list[Record | None] = []
            for id_, loc in zip(id_list, locations, strict=True):
                if loc is None:
                    out.append(None)
                    continue
                unit, row = loc
                if isinstance(unit, Memtable):
                    vec = unit.vectors[row].copy()
                    meta = orjson.loads(orjson.dumps(unit.metadata[row]))
                else:
                    vec = unit.vector_at(row)
                    meta = unit.metadata_at(row)
                out.append(Record(id_, vec, meta))
        return out

    def count(self, filter: Any = None) -> int:
        """Live records (matching ``filter`` when given)."""
        self._check_open()
        state = self._state
        if filter is None:
            return sum(m.live_count for m in state.memtables) + sum(
                s.live_count for s in state.segments
            )
        flt = self._compile(filter)
        total = 0
        for mem in state.memtables:
            n = mem.n
            total += int(np.count_nonzero(mem.filter_mask(flt, n) & ~mem.dead[:n]))
        for seg in state.segments:
            total += seg.filter_state(flt).count
        return total

    def _compile(self, filter: Any) -> Any:
        from keeldb.filtering import compile_filter

        return _KeyedFilter(compile_filter(filter), filter)

    def _matching_ids(self, state: State, flt: Any) -> list[str]:
        ids: list[str] = []
        for mem in state.memtables:
            n = mem.n
            rows = np.flatnonzero(mem.filter_mask(flt, n) & ~mem.dead[:n])
            ids.extend(mem.ids[r] for r in rows.tolist())
        for seg in state.segments:
            rows = np.flatnonzero(seg.filter_state(flt).allowed)
            ids.extend(seg.ids.ids_at(rows))
        return ids

    def search(
        self,
        vector: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
    ) -> list[Hit]:
        """The ``k`` nearest live records to ``vector`` (matching ``filter``), closest
        first. Fewer than k only when fewer than k records (match).

        ``exact=True`` compares the query with every live (matching) record instead of
        walking HNSW graphs: recall 1.0, at a cost linear in the rows searched; ``ef``
        must then be None.

        ``with_metadata=False`` leaves each hit's metadata as None instead of decoding a
        fresh dict for it (ids and distances only, like a raw index; the hits are the
        same). Decoding is most of the per-hit cost of a large batch.
        """
        self._check_open()
        check_k(k, ef, exact, with_metadata)
        queries = validate_query(vector, self.dim, self.metric, single=True)
        return self._search(queries, k, ef, filter, exact, with_metadata)[0]

    def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` (q, dim), in one call."""
        self._check_open()
        check_k(k, ef, exact, with_metadata)
        queries = validate_query(vectors, self.dim, self.metric, single=False)
        if len(queries) == 0:
            return []
        return self._search(queries, k, ef, filter, exact, with_metadata)

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int | None,
        filter: Any,
        exact: bool,
        with_metadata: bool = True,
    ) -> list[list[Hit]]:
        t0 = time.perf_counter()
        flt = self._compile(filter) if filter is not None else None
        ef_used = ef if ef is not None else self.config.ef_search
        state = self._state
        units: list[Memtable | Segment] = []
        results: list[UnitResult] = []
        want_stats = bool(self._search_callbacks)
        matched = 0
        for mem in state.memtables:
            n = mem.n
            if n == 0:
                continue
            match = mem.filter_mask(flt, n) if flt is not None else None
            if match is not None and want_stats:
                matched += int(np.count_nonzero(match & ~mem.dead[:n]))
            d, r = mem.search(queries, k, match, n)
            units.append(mem)
            results.append(
                UnitResult(
                    d, r, "exact" if match is None else "exact-filtered", n * len(queries), 0
                )
            )
        for seg in state.segments:
            if flt is not None and want_stats:
                matched += seg.filter_state(flt).count
            units.append(seg)
            results.append(seg.search(queries, k, ef_used, flt, want_stats=want_stats, exact=exact))
        hits = self._merge(queries.shape[0], k, units, results, with_metadata)
        if self._search_callbacks:
            plans = {_unit_name(u): r.plan for u, r in zip(units, results, strict=True)}
            stats = SearchStats(
                time.perf_counter() - t0,
                len(queries),
                k,
                ef_used,
                len(units),
                plans,
                sum(r.work for r in results),
                sum(r.hops for r in results),
                flt is not None,
                matched if flt is not None else None,
            )
            for cb in list(self._search_callbacks):
                cb(stats)
        return hits

    def _merge(
        self,
        q: int,
        k: int,
        units: list[Memtable | Segment],
        results: list[UnitResult],
        with_metadata: bool = True,
    ) -> list[list[Hit]]:
        if not results:
            return [[] for _ in range(q)]
        if len(results) == 1:
            # One unit: its results are already the sorted top k.
            best_d = results[0].distances
            best_rows = results[0].rows
            best_unit = None
        else:
            dist = np.concatenate([r.distances for r in results], axis=1)
            rows = np.concatenate([r.rows for r in results], axis=1)
            unit_of = np.concatenate(
                [np.full(r.rows.shape[1], i, dtype=np.int32) for i, r in enumerate(results)]
            )
            dist[rows < 0] = np.inf
            best_d, best_col = top_k(dist, k)
            valid = best_col >= 0
            safe = np.where(valid, best_col, 0)
            best_rows = np.where(valid, np.take_along_axis(rows, safe, axis=1), -1)
            best_unit = unit_of[safe]
        if best_unit is None:
            # One unit, every slot filled (the common case; a unit marks a missing hit
            # with row -1 and distance inf together): decode all queries' winners in one
            # pass (one JSON parse, a fresh dict per hit) and cut the hits per query.
            flat_rows = cast(list[int], best_rows.ravel().tolist())
            if flat_rows and min(flat_rows) >= 0:
                ids, metas = _payload(units[0], flat_rows, with_metadata)
                # tuple.__new__ straight from C: half the cost of calling Hit(...)
                dists = cast(list[float], best_d.ravel().tolist())
                flat = list(map(_new_tuple, repeat(Hit), zip(ids, dists, metas, strict=True)))
                width = best_rows.shape[1]
                if q == 1:
                    return [flat]
                return [flat[i : i + width] for i in range(0, q * width, width)]
        rows_list = cast(list[list[int]], best_rows.tolist())
        dist_list = cast(list[list[float]], best_d.tolist())
        if best_unit is None:
            # One unit with gaps: the same, skipping missing slots.
            spans: list[list[int]] = []
            flat_rows = []
            for qi in range(q):
                row_q, dist_q = rows_list[qi], dist_list[qi]
                keep = [j for j, r in enumerate(row_q) if r >= 0 and dist_q[j] != _INF]
                spans.append(keep)
                flat_rows.extend([row_q[j] for j in keep])
            ids, metas = _payload(units[0], flat_rows, with_metadata)
            out: list[list[Hit]] = []
            pos = 0
            for qi, keep in enumerate(spans):
                dist_q = dist_list[qi]
                out.append(
                    [Hit(ids[pos + t], dist_q[j], metas[pos + t]) for t, j in enumerate(keep)]
                )
                pos += len(keep)
            return out
        # Several units: gather winners per unit so each decodes its metadata in one
        # pass; every hit gets its own decoded copy (a row found twice yields two dicts).
        slots: dict[int, list[tuple[int, int, int]]] = {}
        units_list = cast(list[list[int]], best_unit.tolist())
        for qi in range(q):
            for j, row in enumerate(rows_list[qi]):
                if row >= 0 and dist_list[qi][j] != _INF:
                    slots.setdefault(units_list[qi][j], []).append((qi, j, row))
        found: list[dict[int, Hit]] = [{} for _ in range(q)]
        for ui, entries in slots.items():
            ids, metas = _payload(units[ui], [e[2] for e in entries], with_metadata)
            for (qi, j, _), id_, meta in zip(entries, ids, metas, strict=True):
                found[qi][j] = Hit(id_, dist_list[qi][j], meta)
        return [[hits[j] for j in sorted(hits)] for hits in found]

    def scan(self, filter: Any = None, limit: int = 100, cursor: str | None = None) -> Page:
        """Page through live records (matching ``filter``) in id order, ``limit`` at a time.

        Pass the returned ``next_cursor`` to get the next page (None on the last page).
        Each record that exists for the whole scan is returned exactly once, even while
        writes happen (the cursor is the last id returned).
        """
        from keeldb.engine.scan import scan_page

        self._check_open()
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
            raise InvalidArgumentError(f"limit must be an integer in [1, 100000], got {limit!r}")
        if cursor is not None and not isinstance(cursor, str):
            raise InvalidArgumentError("cursor must be a string returned by a previous scan")
        flt = self._compile(filter) if filter is not None else None
        with self._locked_for_write():
            return scan_page(self, self._state, flt, limit, cursor)

    # --- callbacks ---------------------------------------------------------------------------

    def on_search(self, callback: Callable[[SearchStats], None]) -> None:
        """Call ``callback(SearchStats)`` after every search / search_batch."""
        self._search_callbacks.append(callback)

    def on_insert(self, callback: Callable[[InsertStats], None]) -> None:
        """Call ``callback(InsertStats)`` after every acknowledged write batch."""
        self._insert_callbacks.append(callback)

    # --- upkeep -------------------------------------------------------------------------

    def flush(self) -> None:
        """Durability barrier: every write acknowledged before this call is on disk."""
        self._check_writable()
        self.versions.sync_all()

    def compact(
        self, *, progress: Callable[[str, int, int], None] | None = None
    ) -> CompactionReport:
        """Seal the memtable, merge small segments into HNSW segments and physically
        remove deleted rows. Searches keep running on the old segments meanwhile.

        ``progress(phase, done, total)``, when given, is called on this thread before
        (``done`` 0) and after (``done == total``) each phase: ``sealing`` (rows in
        memtables), ``indexing`` (rows inserted into an HNSW graph), ``writing`` (rows
        of the new segment file), ``vacuuming`` (rows of a segment rewritten without its
        deleted rows). Phases repeat per segment. ``indexing`` is also reported after
        every 10,000 rows inserted into the graph (``keeldb.index.hnsw.ADD_CHUNK_ROWS``).
        It must be quick and must not call back into the collection."""
        self._check_writable()
        assert self._maintainer is not None
        return self._maintainer.compact(progress)

    def stats(self) -> CollectionStats:
        """Counts, per-segment detail, HNSW shape, memory and disk estimates."""
        self._check_open()
        state = self._state
        segs: list[SegmentStats] = []
        for i, mem in enumerate(state.memtables):
            segs.append(
                SegmentStats(
                    -1 - i, "memtable", mem.n, mem.live_count, mem.dead_count, 0, mem.memory_bytes()
                )
            )
        levels: dict[int, int] = {}
        edges_total = 0.0
        hnsw_rows = 0
        for seg in state.segments:
            lv, avg, _ = seg.hnsw_summary()
            for level, c in lv.items():
                levels[level] = levels.get(level, 0) + c
            if seg.hnsw is not None:
                edges_total += avg * seg.rows
                hnsw_rows += seg.rows
            segs.append(
                SegmentStats(
                    seg.segment_id,
                    seg.kind,
                    seg.rows,
                    seg.live_count,
                    seg.dead_count,
                    seg.disk_bytes(),
                    seg.memory_bytes(),
                    lv,
                    avg,
                )
            )
        wal_bytes = self.versions.wal_bytes()
        return CollectionStats(
            self.name,
            self.workspace,
            sum(s.live for s in segs),
            sum(s.deleted for s in segs),
            segs,
            self._index_type(state),
            levels,
            edges_total / hnsw_rows if hnsw_rows else 0.0,
            sum(s.memory_bytes for s in segs),
            sum(s.disk_bytes for s in segs) + wal_bytes,
            wal_bytes,
        )

    def _index_type(self, state: State) -> str:
        kinds = {s.kind for s in state.segments}
        if "hnsw" in kinds:
            return "hnsw"
        return "flat"

    def close(self, *, checkpoint: bool = True) -> None:
        """Seal what is in memory, checkpoint, and release files (idempotent).

        ``checkpoint=False`` (a collection being dropped) stops upkeep and closes the WAL
        without sealing. After a storage failure nothing is sealed either: the next open
        replays what is durable.
        """
        if self._closed:
            return
        try:
            if self._maintainer is not None:
                self._maintainer.shutdown(checkpoint=checkpoint and self.versions.failed is None)
        finally:
            self._closed = True


_new_tuple = tuple.__new__
_INF = float("inf")


class _KeyedFilter:
    """A compiled filter plus its canonical JSON, the key of segments' filter caches."""

    __slots__ = ("filter", "key")

    def __init__(self, flt: Any, spec: Any) -> None:
        self.filter = flt
        self.key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)

    def mask(self, columns: Any) -> np.ndarray:
        mask: np.ndarray = self.filter.mask(columns)
        return mask

    def matches(self, metadata: Any) -> bool:
        return bool(self.filter.matches(metadata))


def _payload(
    unit: Memtable | Segment, rows: list[int], with_metadata: bool = True
) -> tuple[list[str], Sequence[dict[str, Any] | None]]:
    """Ids and freshly decoded metadata of ``rows`` of one unit (None for each row
    unless ``with_metadata``)."""
    if not rows:
        return [], []
    if isinstance(unit, Memtable):
        ids = [unit.ids[r] for r in rows]
        if not with_metadata:
            return ids, [None] * len(rows)
        return ids, orjson.loads(orjson.dumps([unit.metadata[r] for r in rows]))
    ids = unit.ids.ids_many(rows)
    return ids, unit.metadata_many(rows) if with_metadata else [None] * len(rows)


def _kill(unit: Memtable | Segment, row: int) -> None:
    if isinstance(unit, Memtable):
        unit.kill(row)
    elif not unit.dead[row]:
        unit.dead[row] = True
        unit.dead_count += 1
        unit.dead_version += 1


def _unit_metadata(unit: Memtable | Segment, row: int) -> dict[str, Any]:
    if isinstance(unit, Memtable):
        return unit.metadata[row]
    return unit.metadata_at(row)


def _unit_name(unit: Memtable | Segment) -> str:
    return "mem" if isinstance(unit, Memtable) else f"seg-{unit.segment_id}"
