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
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson

from keeldb.engine.derived_kinds import indexes_for
from keeldb.engine.memtable import Memtable
from keeldb.engine.search import merge_hits
from keeldb.engine.state import Options, State, make_memtable
from keeldb.engine.unit import Unit, UnitResult
from keeldb.engine.validation import (
    check_k,
    validate_documents,
    validate_ids,
    validate_metadata,
    validate_query,
    validate_vectors,
)
from keeldb.errors import BusyError, ClosedError, InvalidArgumentError, KeelError, StorageError
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

Location = tuple[Unit, int]


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
        self.derived = indexes_for(self.config)  # derived indexes (engine/derived.py)
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
        return make_memtable(self.config, self.options, self.derived)

    def make_spare(self) -> None:
        """Prepare the next memtable with its pages already touched (background thread).

        On this kind of virtual machine the first write to a fresh page costs ~100x a
        warm copy (measured: ~10 ms per 1.5 MB batch), so a writer filling a brand-new
        memtable pays mostly page faults; faulting the spare's pages in the background
        (numpy releases the GIL) takes that off the write path.
        """
        if self._spare is None:
            mem = make_memtable(self.config, self.options, self.derived)
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
        *,
        documents: Sequence[str | None] | None = None,
    ) -> None:
        """Insert records, or replace those whose id exists (all or nothing).

        ``vectors`` is (n, dim) array-like; ``metadata`` a list aligned with ids (or None).
        For an existing id, metadata ``None`` keeps its old metadata and ``{}`` clears it.
        ``documents`` (a list of str or None aligned with ids, or None) are the records'
        texts, stored durably and indexed for :meth:`text_search`; like metadata, None
        (the whole argument or an entry) keeps an existing record's document.
        The whole batch is validated first (ids, dimensions, finite values, zero vectors
        under cosine, JSON metadata): on error nothing is written. Returns once the batch
        is durable per the database's durability mode.
        """
        op = self._upsert_op(ids, vectors, metadata, documents)
        if not op.ids:  # an empty batch is a no-op: no WAL record (issue 17)
            self._check_writable()
            return
        self._write([op])

    def _upsert_op(self, ids: Any, vectors: Any, metadata: Any, documents: Any = None) -> UpsertOp:
        id_list = validate_ids(ids)
        vecs = validate_vectors(vectors, len(id_list), self.dim, self.metric)
        metas, meta_json = validate_metadata(metadata, len(id_list))
        docs = validate_documents(documents, len(id_list))
        return UpsertOp(id_list, vecs, metas, meta_json, docs)

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
        # Derived indexes analyse the given documents before the lock (analysis is the
        # costly part of indexing text); entries that "keep" a document are re-analysed
        # under the lock only when the resolution below filled them in.
        early = self._prepare_early(batch)
        with self._locked_for_write():
            self._check_writable()
            if not locked:
                self._wait_for_backlog()
            self._resolve_kept_metadata(batch)
            seq, wal, end = self.versions.log(encode_batch(batch))
            counts = self._apply(batch, early)
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
        """Resolve "keep the existing record's" metadata and documents before the batch
        is logged (write lock held; see :func:`keeldb.engine.resolve.resolve_kept`)."""
        from keeldb.engine.resolve import resolve_kept

        resolve_kept(self._state, batch, self._locate)

    def _prepare_early(self, batch: Batch) -> dict[int, tuple[list[str | None], dict[str, Any]]]:
        """Per upsert op with documents (by ``id(op)``): the documents as given and each
        derived index's :meth:`prepare` of them."""
        early: dict[int, tuple[list[str | None], dict[str, Any]]] = {}
        for op in batch:
            if isinstance(op, UpsertOp) and op.documents is not None:
                given = list(op.documents)
                early[id(op)] = (given, {d.name: d.prepare(given) for d in self.derived})
        return early

    def _apply(
        self,
        batch: Batch,
        early: dict[int, tuple[list[str | None], dict[str, Any]]] | None = None,
    ) -> dict[str, int]:
        """Apply a logged batch to memory (write lock held). Cannot fail on valid input.
        ``early``: derived-index preparations made before the lock (see :meth:`_write`),
        used when the op's documents are still those they were made from."""
        counts = {"upserted": 0, "deleted": 0, "replaced": 0}
        for op in batch:
            if isinstance(op, UpsertOp):
                hashes = id_hashes(op.ids)  # kept by the memtable: the seal reuses them
                locations = self._locate(self._state, op.ids, hashes)
                metas: list[dict[str, Any]] = []
                for i, loc in enumerate(locations):
                    meta = op.metadata[i]
                    if loc is not None and meta is None:
                        meta = _unit_metadata(*loc)
                    metas.append({} if meta is None else meta)
                # Old rows die before the new ones are published: a concurrent search may
                # miss a record being replaced, but never sees it twice.
                counts["replaced"] += _kill(locations)
                pre = None if early is None else early.get(id(op))
                if pre is not None and pre[0] == op.documents:
                    prepared = pre[1]
                else:
                    prepared = {d.name: d.prepare(op.documents) for d in self.derived}
                self._state.active.append(op.ids, op.vectors, metas, hashes, op.documents, prepared)
                counts["upserted"] += len(op.ids)
            else:
                counts["deleted"] += _kill(self._locate(self._state, op.ids))
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
            sub = ids if len(missing) == len(ids) else [ids[i] for i in missing]
            rows = mem.locate(sub, None)
            if rows:
                for j, row in rows.items():
                    found[missing[j]] = (mem, row)
                missing = [i for j, i in enumerate(missing) if j not in rows]
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
                vec, meta = unit.record(row)
                out.append(Record(id_, vec, meta, unit.documents_of([row])[0]))
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
        return sum(unit.live_matching(flt).count for unit in _units(state))

    def _compile(self, filter: Any) -> Any:
        from keeldb.filtering import compile_filter

        return _KeyedFilter(compile_filter(filter), filter)

    def _matching_ids(self, state: State, flt: Any) -> list[str]:
        ids: list[str] = []
        for unit in _units(state):
            ids.extend(unit.ids_of(unit.live_matching(flt).rows()))
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
        with_documents: bool = True,
    ) -> list[Hit]:
        """The ``k`` nearest live records to ``vector`` (matching ``filter``), closest
        first. Fewer than k only when fewer than k records (match).

        ``exact=True`` compares the query with every live (matching) record instead of
        walking HNSW graphs: recall 1.0, at a cost linear in the rows searched; ``ef``
        must then be None.

        ``with_metadata=False`` leaves each hit's metadata as None instead of decoding a
        fresh dict for it (ids and distances only, like a raw index; the hits are the
        same). Decoding is most of the per-hit cost of a large batch.
        ``with_documents=False`` leaves each hit's document as None (otherwise the
        record's document, None when it has none).
        """
        self._check_open()
        check_k(k, ef, exact, with_metadata, with_documents)
        queries = validate_query(vector, self.dim, self.metric, single=True)
        return self._search(queries, k, ef, filter, exact, with_metadata, with_documents)[0]

    def search_batch(
        self,
        vectors: Any,
        k: int = 10,
        *,
        ef: int | None = None,
        filter: Any = None,
        exact: bool = False,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``vectors`` (q, dim), in one call."""
        self._check_open()
        check_k(k, ef, exact, with_metadata, with_documents)
        queries = validate_query(vectors, self.dim, self.metric, single=False)
        if len(queries) == 0:
            return []
        return self._search(queries, k, ef, filter, exact, with_metadata, with_documents)

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int | None,
        filter: Any,
        exact: bool,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[list[Hit]]:
        t0 = time.perf_counter()
        flt = self._compile(filter) if filter is not None else None
        ef_used = ef if ef is not None else self.config.ef_search
        units = [u for u in _units(self._state) if u.rows]  # an empty memtable has no rows
        want_stats = bool(self._search_callbacks)
        results: list[UnitResult] = [
            u.search(queries, k, ef_used, flt, want_stats=want_stats, exact=exact) for u in units
        ]
        hits = merge_hits(queries.shape[0], k, units, results, with_metadata, with_documents)
        if self._search_callbacks:
            matched = sum(r.matched for r in results)
            plans = {u.name: r.plan for u, r in zip(units, results, strict=True)}
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

    def text_search(
        self,
        query: str,
        k: int = 10,
        *,
        filter: Any = None,
        with_metadata: bool = True,
        with_documents: bool = True,
    ) -> list[Hit]:
        """The ``k`` live records whose documents best match ``query`` by BM25 (among
        those matching ``filter``), best first.

        Each hit has ``score`` (BM25, larger = better) and ``distance = -score``. The
        query is analysed like the documents (the collection's analyser); statistics
        (document count, average length, document frequencies) cover every live document
        of the collection, whatever the filter. Only documents containing a query term
        are returned, so fewer than k hits means fewer match. A document is found as soon
        as its ``upsert`` returns; a deleted one never is.
        """
        from keeldb.engine.text_search import text_search

        self._check_open()
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
        check_k(k, None, False, with_metadata, with_documents)
        flt = self._compile(filter) if filter is not None else None
        return text_search(self, query, k, flt, with_metadata, with_documents)

    def hybrid_search(
        self,
        query: str,
        k: int = 10,
        *,
        vector: Any = None,
        filter: Any = None,
        fusion: str = "rrf",
        rrf_k: float | None = None,
        weights: Sequence[float] | None = None,
    ) -> list[Hit]:
        """Dense and BM25 results for one query, fused into one ranking (best first).

        ``vector`` is the dense query (required: computing it from ``query`` needs an
        embedding function). Both sides take the top 100 (or ``k`` if larger) live rows
        matching ``filter``; ``fusion="rrf"`` (default) sums ``w / (rrf_k + rank)`` per
        list (``rrf_k`` default 10, measured on SciFact in ``docs/text.md``);
        ``fusion="weighted"`` sums ``w`` times each list's min-max normalised score.
        ``weights`` = (dense, text), default equal. Each hit's ``score`` is its fused
        score (larger = better), ``distance = -score``; metadata and document included.
        """
        from keeldb.engine.hybrid import check_fusion, hybrid_search

        self._check_open()
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
        check_k(k, None)
        w = check_fusion(fusion, rrf_k, weights)
        if vector is None:
            raise InvalidArgumentError(
                "hybrid_search needs vector= (the dense query) for this collection"
            )
        return hybrid_search(self, query, k, vector, filter, fusion, rrf_k, w)

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

    def off_search(self, callback: Callable[[SearchStats], None]) -> None:
        """Stop calling ``callback`` (registered with :meth:`on_search`); no-op if absent."""
        with suppress(ValueError):
            self._search_callbacks.remove(callback)

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
        deleted rows). Phases repeat per segment. It must be quick and must not call back
        into the collection."""
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


def _units(state: State) -> tuple[Unit, ...]:
    """The state's units: memtables (active last), then segments."""
    return (*state.memtables, *state.segments)


def _kill(locations: list[Location | None]) -> int:
    """Mark the rows at ``locations`` dead (None: absent), one call per unit; returns
    how many died (write lock held)."""
    by_unit: dict[int, tuple[Unit, list[int]]] = {}
    for loc in locations:
        if loc is not None:
            by_unit.setdefault(id(loc[0]), (loc[0], []))[1].append(loc[1])
    return sum(unit.kill(np.array(rows, dtype=np.int64)) for unit, rows in by_unit.values())


def _unit_metadata(unit: Unit, row: int) -> dict[str, Any]:
    return unit.metadata_at(row)
