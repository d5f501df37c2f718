"""Sealed segments: immutable vectors, ids, metadata, filter columns and (maybe) an HNSW
graph, plus a mutable tombstone set. :func:`write_segment` creates the files;
:class:`Segment` maps them for search (a :class:`~keeldb.engine.unit.Unit`).

A search asks the planner (:mod:`keeldb.engine.planner`) which index answers, then runs
it: an exact scan (:class:`~keeldb.index.exact.ExactIndex`), the graph
(:class:`~keeldb.index.hnsw.HnswIndex`, a float16 graph's hits re-scored against the
float32 vectors) or a filter's compact copy (:mod:`keeldb.engine.filter_cache`). Any
query the graph answers with fewer than ``min(k, count)`` hits is answered exactly
instead, so a filtered search returns k hits whenever k rows match.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from keeldb.engine.derived import DerivedIndex, segment_part
from keeldb.engine.doc_filter import SegmentDocuments
from keeldb.engine.filter_cache import FilterCache, FilterState
from keeldb.engine.neighbourhood import PROBE_MIN_PASS, probe
from keeldb.engine.planner import PLAN_COSTS, Plan, plan_search
from keeldb.engine.unit import UnitResult
from keeldb.errors import CorruptionError
from keeldb.index.base import Allowed
from keeldb.index.exact import ExactIndex, every_row_found
from keeldb.index.hnsw import HnswIndex
from keeldb.masks import read_only, with_dead
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import SEGMENT_EXTENSIONS, TMP_SUFFIX, segment_file_name
from keeldb.storage.manifest import CollectionConfig, SegmentEntry
from keeldb.storage.segment_files import (
    IdTable,
    MetadataTable,
    id_hashes,
    map_vectors,
    read_columns,
    read_tombstones,
    write_columns,
    write_ids,
    write_metadata,
    write_vectors,
)
from keeldb.storage.text_files import DocumentsTable, write_documents

log = logging.getLogger("keeldb")

__all__ = ["Segment", "write_segment"]


def write_segment(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    config: CollectionConfig,
    vectors: np.ndarray,
    ids: list[str],
    metadata_json: list[bytes],
    metadata: list[dict[str, Any]] | None,
    index: HnswIndex | None,
    hashes: np.ndarray | None = None,
    vector_order: np.ndarray | None = None,
    documents: Sequence[str | None] | None = None,
) -> int:
    """Write every file of a new segment (fsynced, under final names). Returns bytes.

    ``hashes`` are the ids' ``id_hashes`` when the caller already has them. With
    ``vector_order``, row i's vector is ``vectors[vector_order[i]]`` (the other arguments
    are already in the segment's row order).

    The filter-column file is written when ``metadata`` (the decoded rows) is given: for
    HNSW segments. A flat segment is short-lived (merged into HNSW as the collection
    grows) and builds its columns in memory on its first filtered search instead; a seal
    does not spend its time (and the writers' GIL) on them.

    ``documents`` (row order; None when no row has one) are written to ``.docs``.
    """
    from keeldb.filtering import MetadataColumns

    total = write_vectors(fs, directory, segment_id, vectors, vector_order)
    total += write_ids(fs, directory, segment_id, ids, hashes)
    total += write_metadata(fs, directory, segment_id, metadata_json)
    if metadata is not None:
        total += write_columns(
            fs, directory, segment_id, MetadataColumns.build(metadata).to_bytes(), len(ids)
        )
    if index is not None:
        total += index.save(fs, os.path.join(directory, segment_file_name(segment_id, "hnsw")))
    if documents is not None:
        total += write_documents(fs, directory, segment_id, documents)
    fs.sync_dir(directory)
    return total


def load_columns(fs: FileSystem, directory: str, segment_id: int, rows: int) -> Any:
    """A segment's column file, decoded and checked (``CorruptionError`` naming it)."""
    from keeldb.filtering import MetadataColumns

    path, payload = read_columns(fs, directory, segment_id, rows)
    try:
        cols = MetadataColumns.from_bytes(payload)
    except ValueError as exc:
        raise CorruptionError(f"filter columns cannot be decoded: {exc}", path=path) from exc
    if len(cols) != rows:
        raise CorruptionError("filter columns have the wrong row count", path=path)
    return cols


class Segment:
    """A sealed segment mapped for reading. Thread-safe for readers; ``dead`` is changed
    only by :meth:`kill`, under the collection's write lock (rows only ever go from live
    to dead)."""

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        entry: SegmentEntry,
        config: CollectionConfig,
        derived: Sequence[DerivedIndex] = (),
    ) -> None:
        self.fs = fs
        self.directory = directory
        self.segment_id = entry.segment_id
        self.rows = entry.rows
        self.kind = entry.kind
        self.config = config
        self.metric = config.metric
        self._lock = threading.Lock()
        self._columns: Any = None
        self._exact: ExactIndex | None = None
        self._sorted_ids: tuple[np.ndarray, np.ndarray] | None = None
        self.vectors = map_vectors(directory, self.segment_id, self.rows, config.dim)
        try:
            self.ids = IdTable(directory, self.segment_id, self.rows)
            self.meta = MetadataTable(directory, self.segment_id, self.rows)
            self.docs: DocumentsTable | None = (
                DocumentsTable(directory, self.segment_id, self.rows) if entry.documents else None
            )
            # Copy-on-write (see kill): readers index with the mask they took, lock-free.
            if entry.tombstones:
                dead = read_tombstones(fs, directory, entry.tombstones, self.rows)
            else:
                dead = np.zeros(self.rows, dtype=bool)
            self.dead = read_only(dead)
        except BaseException:
            # The vector array still views the map: it is unmapped when the array goes.
            # (Closing it here raised BufferError, hiding the real error.)
            del self.vectors
            raise
        self.dead_count = int(np.count_nonzero(self.dead))
        self.dead_version = 0  # bumped whenever a row dies (invalidates filter states)
        self._filters = FilterCache()
        self._unfiltered_calls = 0  # unfiltered searches (1 in 16 is timed for the planner)
        self.persisted_tombstones = entry.tombstones
        self.persisted_dead_count = self.dead_count
        self.hnsw: HnswIndex | None = None
        self.payloads_verified = False
        self.rebuilt_index = False
        if self.kind == "hnsw":
            self._load_or_rebuild_index()
            if self.config.quantization == "sq8":
                # The collection asked for its float32 vectors to stay on disk: they are
                # read a row at a time, to re-score candidates.
                self.vectors.advise_random()
        # derived-index parts by name, each told of the tombstones so far
        self.parts: dict[str, Any] = {}
        dead_rows = np.flatnonzero(self.dead)
        for index in derived:
            part = segment_part(index, fs, directory, self.segment_id, self)
            if len(dead_rows):
                part.kill(dead_rows)
            self.parts[index.name] = part

    # --- lifecycle ---------------------------------------------------------------------

    def _hnsw_path(self) -> str:
        return os.path.join(self.directory, segment_file_name(self.segment_id, "hnsw"))

    def _load_or_rebuild_index(self) -> None:
        path = self._hnsw_path()
        dim, metric = self.config.dim, self.metric
        try:
            if not os.path.exists(path):
                raise CorruptionError("HNSW file is missing", path=path)
            self.hnsw = HnswIndex.load(path, self.rows, dim, metric)
            return
        except CorruptionError as exc:
            log.warning(
                "segment %d: %s; rebuilding the HNSW index from its vectors", self.segment_id, exc
            )
        # The index is derived data: rebuild it from the (verified) vectors.
        self.vectors.verify()
        config = self.config
        index = HnswIndex.build(
            self.vectors.array,
            metric,
            config.m,
            config.ef_construction,
            quantization=config.graph_quantization,
        )
        tmp = path + TMP_SUFFIX
        self.fs.remove(tmp)
        index.save(self.fs, tmp)
        self.fs.rename(tmp, path)
        self.fs.sync_dir(self.directory)
        self.hnsw = HnswIndex.load(path, self.rows, dim, metric)
        self.rebuilt_index = True

    def close(self) -> None:
        """Drop the graph and columns and close the id, metadata and document maps."""
        self.hnsw = None
        self._columns = None
        self.ids.close()
        self.meta.close()
        if self.docs is not None:
            self.docs.close()
        # The vector map may still be referenced by a search in flight; the OS keeps the
        # mapping alive until the last numpy view is gone.

    def entry(self, tombstones: str | None) -> SegmentEntry:
        """This segment's manifest entry, with tombstone file ``tombstones``."""
        return SegmentEntry(
            self.segment_id, self.rows, self.kind, tombstones, documents=self.docs is not None
        )

    @property
    def payload_bytes(self) -> int:
        """Bytes of the large payloads whose checksum may be deferred at open."""
        hnsw = self.hnsw
        extra = 0 if hnsw is None else hnsw.storage_bytes
        return int(self.vectors.header.payload_len) + extra

    def verify_payloads(self) -> None:
        """Full checksum of the large payloads deferred at open (vectors, HNSW storage).
        Idempotent: a verified segment is not read again."""
        if self.payloads_verified:
            return
        self.vectors.verify()
        if self.hnsw is not None:
            self.hnsw.verify_storage()
        self.payloads_verified = True

    # --- tombstones --------------------------------------------------------------------

    def kill(self, rows: np.ndarray) -> int:
        """Mark ``rows`` dead (negative entries and dead rows skipped); returns how many
        died. Caller holds the collection's write lock.

        The mask is copy-on-write: a new read-only mask is published, then the count and
        version follow, so a mask a reader took never changes (see
        :func:`keeldb.masks.with_dead`)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        rows = rows[rows >= 0]
        fresh = np.unique(rows[~self.dead[rows]])
        if len(fresh):
            self.dead = with_dead(self.dead, fresh)
            self.dead_count += len(fresh)
            self.dead_version += 1
            for part in self.parts.values():
                part.kill(fresh)
        return len(fresh)

    # --- reads -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """``seg-<id>`` (search stats)."""
        return f"seg-{self.segment_id}"

    @property
    def live_count(self) -> int:
        """Rows not dead."""
        return self.rows - self.dead_count

    def columns(self) -> Any:
        """The segment's filter columns: from its column file, or, for a flat segment
        without one, built from its metadata on first use (then kept)."""
        with self._lock:
            if self._columns is None:
                from keeldb.filtering import MetadataColumns

                if self.kind == "flat" and not os.path.exists(
                    os.path.join(self.directory, segment_file_name(self.segment_id, "cols"))
                ):
                    self._columns = MetadataColumns.build(
                        self.metadata_many(list(range(self.rows)))
                    )
                    return self._columns
                self._columns = load_columns(self.fs, self.directory, self.segment_id, self.rows)
            return self._columns

    def filter_state(self, flt: Any) -> FilterState:
        """The filter's match mask, live matching rows and their count, cached per
        filter ``key`` (canonical filter JSON) and refreshed when rows die."""
        docs = SegmentDocuments(self.docs, self.parts)
        return self._filters.state(
            flt, self.columns, self.dead, self.dead_count, self.dead_version, docs
        )

    def live_matching(self, flt: Any) -> Allowed:
        """Live rows passing ``flt`` (None: every live row), with their count."""
        if flt is not None:
            return self.filter_state(flt).allowed
        return Allowed.live(self.dead, self.dead_count)

    def _exact_index(self) -> ExactIndex:
        """The exact index over the mapped vectors (with squared norms under ``l2``)."""
        if self._exact is None:
            v = self.vectors.array
            norms = np.einsum("ij,ij->i", v, v) if self.metric == "l2" else None
            self._exact = ExactIndex(v, self.metric, norms)
        return self._exact

    def vector_at(self, row: int) -> np.ndarray:
        """A copy of ``row``'s vector."""
        return np.array(self.vectors.array[row], dtype=np.float32, copy=True)

    def metadata_at(self, row: int) -> dict[str, Any]:
        """``row``'s metadata, freshly decoded."""
        return self.meta.at(row)

    def record(self, row: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Copies of ``row``'s vector and metadata."""
        return self.vector_at(row), self.metadata_at(row)

    @property
    def has_documents(self) -> bool:
        """Whether the segment stores documents (a ``.docs`` file)."""
        return self.docs is not None

    def documents_of(self, rows: list[int]) -> list[str | None]:
        """The documents of ``rows`` (None where a row has none)."""
        if self.docs is None or not rows:
            return [None] * len(rows)
        return self.docs.many(rows)

    def documents(self) -> list[str | None]:
        """Every row's document, in row order (rebuilding derived parts)."""
        if self.docs is None:
            return [None] * self.rows
        return self.docs.all()

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows``."""
        return self.ids.ids_at(rows)

    def payload(
        self, rows: list[int], with_metadata: bool = True
    ) -> tuple[list[str], Sequence[dict[str, Any] | None]]:
        """Ids and freshly decoded metadata of ``rows`` (None each unless
        ``with_metadata``)."""
        if not rows:
            return [], []
        ids = self.ids.ids_many(rows)
        return ids, self.metadata_many(rows) if with_metadata else [None] * len(rows)

    def sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, their rows); built on first use and kept (ids never change)."""
        cached = self._sorted_ids
        if cached is None:
            ids = np.array(self.ids.all_ids(), dtype=object)
            order = np.argsort(ids, kind="stable")
            cached = (ids[order], order)
            self._sorted_ids = cached
        return cached

    def adopt_columns(self, columns: Any) -> None:
        """Use ``columns`` (one per row, e.g. the sealed memtable's) instead of building
        them on first use."""
        assert len(columns) == self.rows
        with self._lock:
            self._columns = columns

    def metadata_many(self, rows: list[int]) -> list[dict[str, Any]]:
        """Decode many rows' metadata with one JSON parse (C speed)."""
        if not rows:
            return []
        raw = b"[" + b",".join(self.meta.raw_many(rows)) + b"]"
        try:
            values = orjson.loads(raw)
        except ValueError as exc:
            raise CorruptionError("metadata is not JSON", path=self.meta.path) from exc
        if (
            not isinstance(values, list)
            or len(values) != len(rows)
            or set(map(type, values)) != {dict}
        ):
            raise CorruptionError("metadata rows are not objects", path=self.meta.path)
        return values

    def locate(self, ids: list[str], hashes: np.ndarray | None) -> dict[int, int]:
        """Live rows of ``ids`` here: {index in ids: row}."""
        found: dict[int, int] = {}
        table = self.ids
        sorted_hashes = table.hashes
        if len(sorted_hashes) == 0:
            return found
        if hashes is None:
            hashes = id_hashes(ids)
        # One binary search per id; most upserted ids are new, so only the few whose
        # hash is present here need the range of equal hashes and an id comparison.
        lo = np.searchsorted(sorted_hashes, hashes, side="left")
        present = sorted_hashes[np.minimum(lo, len(sorted_hashes) - 1)] == hashes
        for i in np.flatnonzero(present).tolist():
            start = int(lo[i])
            end = start + 1
            while end < len(sorted_hashes) and sorted_hashes[end] == hashes[i]:
                end += 1
            for row in table.order[start:end].tolist():
                if not self.dead[row] and table.id_at(row) == ids[i]:
                    found[i] = row
                    break
        return found

    # --- search --------------------------------------------------------------------------

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        flt: Any,
        *,
        want_stats: bool = False,
        exact: bool = False,
    ) -> UnitResult:
        """Top-``k`` per query among live rows (passing ``flt`` when it is not None).

        ``exact`` forces the exact plan (every live, matching row compared).

        ``want_stats`` reads faiss's global HNSW counters around the search (they are
        shared by all threads, so concurrent searches blur them; off by default because
        reading them costs as much as a small search).
        """
        hnsw = self.hnsw  # read once: close() may clear it during a search
        if flt is None and not exact and hnsw is not None and not self.dead_count:
            # The common call (no filter, no deletes) has one plan: skip the planner, and
            # time only one call in 16 to keep the walk's price current (issue 16: fixed
            # cost per query).
            self._unfiltered_calls += 1
            if self._unfiltered_calls & 15:
                return self._run(
                    Plan("hnsw", ef), hnsw, None, None, self.rows, queries, k, want_stats
                )
        fstate: FilterState | None = None
        allowed: Allowed | None = None
        if flt is None:
            dead_count = self.dead_count
            if dead_count:
                allowed = Allowed.live(self.dead, dead_count)
            count = self.rows - dead_count
        else:
            fstate = self.filter_state(flt)
            allowed = fstate.allowed
            count = allowed.count
            if not exact:
                fstate.uses += 1
        plan = plan_search(
            rows=self.rows,
            count=count,
            restricted=allowed is not None,
            filtered=fstate is not None,
            ef=ef,
            queries=len(queries),
            k=k,
            dim=self.config.dim,
            has_graph=hnsw is not None,
            fp16=hnsw is not None and not hnsw.exact_scores,
            exact=exact,
            filter_uses=0 if fstate is None else fstate.uses,
            compact_built=fstate is not None and fstate.compact is not None,
            costs=PLAN_COSTS,
        )
        # A compact copy's first use builds it: that time is not the plan's price.
        building = plan.kind == "compact" and fstate is not None and fstate.compact is None
        t0 = time.perf_counter()
        result = self._run(plan, hnsw, fstate, allowed, count, queries, k, want_stats)
        probed = result.plan.startswith(("hnsw-probe", "probe+"))  # not the plan priced
        if plan.kind != "empty" and not building and not probed:
            # the plan's real time teaches the planner this machine's prices
            fp16 = hnsw is not None and not hnsw.exact_scores
            seconds = time.perf_counter() - t0
            PLAN_COSTS.observe(
                plan.kind, count, plan.ef, len(queries), self.config.dim, fp16, seconds
            )
        return result

    def _run(
        self,
        plan: Plan,
        hnsw: HnswIndex | None,
        fstate: FilterState | None,
        allowed: Allowed | None,
        count: int,
        queries: np.ndarray,
        k: int,
        want_stats: bool,
    ) -> UnitResult:
        """Execute ``plan`` (see :meth:`search`)."""
        if plan.kind == "empty":
            return UnitResult.empty(len(queries))
        if plan.kind == "compact":
            assert fstate is not None  # the planner offers compact copies to filters only
            compact = self._filters.compact(fstate, self.vectors.array, self.metric)
            d, r = compact.search(queries, k, plan.ef)
            work = len(queries) * (len(compact.rows) + compact.candidates(k))
            return UnitResult(d, r, "compact-filtered", work, 0, count)
        if plan.kind == "exact":
            d, r = self._exact_index().search(queries, k, plan.ef, allowed)
            if fstate is None:
                return UnitResult(d, r, "exact", self.rows * len(queries), 0, count)
            return UnitResult(d, r, "exact-filtered", count * len(queries), 0, count)
        assert hnsw is not None  # the planner walks a graph only when there is one
        if (
            fstate is not None
            and len(queries) == 1
            and count >= PROBE_MIN_PASS * self.rows
            and 2 * k <= plan.ef  # else k matches cannot fill the walk's nearer half
        ):
            assert allowed is not None  # a filter's state always has its rows
            probed = self._probe(hnsw, queries, k, plan.ef, allowed, want_stats)
            if probed is not None:
                return probed
        result = self._search_graph(hnsw, queries, k, plan.ef, allowed, want_stats)
        result.matched = count
        if fstate is not None:
            result.plan = "hnsw-filtered"
        return self._fill_short(result, queries, k, allowed, count)

    def _probe(
        self,
        hnsw: HnswIndex,
        queries: np.ndarray,
        k: int,
        ef: int,
        allowed: Allowed,
        want_stats: bool,
    ) -> UnitResult | None:
        """The answer the query's neighbourhood decides (:func:`neighbourhood.probe`),
        with its work counted as :meth:`_search_graph` counts a walk's (plus the exact
        scan's rows); None: walk filtered."""
        if want_stats:
            ndis0, hops0 = HnswIndex.counters()
        probed = probe(hnsw, self._exact_index(), queries, k, ef, allowed)
        if probed is None:
            return None
        d, r, how = probed
        work = hops = 0
        if want_stats:
            ndis1, hops1 = HnswIndex.counters()
            work, hops = max(ndis1 - ndis0, 0), max(hops1 - hops0, 0)
            if how == "probe+exact-filtered":
                work += allowed.count
            elif not hnsw.exact_scores:
                work += int(np.count_nonzero(r >= 0))  # the re-scoring distances
        return UnitResult(d, r, how, work, hops, allowed.count)

    def _search_graph(
        self,
        hnsw: HnswIndex,
        queries: np.ndarray,
        k: int,
        ef: int,
        allowed: Allowed | None,
        want_stats: bool,
    ) -> UnitResult:
        """Walk the graph; a reduced (float16, sq8) graph's candidates
        (:meth:`HnswIndex.candidates`) are re-scored against the float32 vectors and the
        best ``k`` kept, so distances (and their order) are exact, as from every other
        unit."""
        if want_stats:
            ndis0, hops0 = HnswIndex.counters()
        if hnsw.exact_scores:
            dist, labels = hnsw.search(queries, k, ef, allowed)
        else:
            labels = hnsw.search_rows(queries, hnsw.candidates(k, ef), ef, allowed)
        work = hops = 0
        if want_stats:
            ndis1, hops1 = HnswIndex.counters()
            work, hops = max(ndis1 - ndis0, 0), max(hops1 - hops0, 0)
        if not hnsw.exact_scores:
            dist, labels = self._exact_index().rescore(queries, labels)
            if want_stats:
                work += int(np.count_nonzero(labels >= 0))  # the re-scoring distances
            if labels.shape[1] > k:
                dist, labels = dist[:, :k], labels[:, :k]
        return UnitResult(dist, labels, "hnsw", work, hops)

    def _fill_short(
        self,
        result: UnitResult,
        queries: np.ndarray,
        k: int,
        allowed: Allowed | None,
        count: int,
    ) -> UnitResult:
        """Answer exactly the queries the graph left with fewer than ``min(k, count)``
        hits (heavy filtering or deletes), so k hits come back whenever k rows qualify."""
        dist, labels = result.distances, result.rows
        if every_row_found(labels):
            return result
        missing = labels < 0
        dist[missing] = np.inf
        want = min(k, count)
        short = np.flatnonzero((~missing).sum(axis=1) < want)
        if len(short):
            rows = allowed.rows() if allowed is not None else np.arange(self.rows)
            d2, r2 = self._exact_index().search_rows(queries[short], k, rows)
            width = max(labels.shape[1], r2.shape[1])
            dist = _pad(dist, width, np.inf)
            labels = _pad(labels, width, -1)
            dist[short, : d2.shape[1]] = d2
            labels[short, : r2.shape[1]] = r2
            result.distances, result.rows = dist, labels
            result.plan += "+exact-fallback"
            result.work += len(rows) * len(short)
        return result

    # --- stats ---------------------------------------------------------------------------

    def hnsw_summary(self) -> tuple[dict[int, int], float, int]:
        """(nodes per level, average level-0 out-degree, graph memory bytes); empty
        without a graph."""
        hnsw = self.hnsw
        if hnsw is None:
            return {}, 0.0, 0
        stats = hnsw.stats()
        return stats.levels, stats.avg_edges, stats.memory_bytes

    def disk_bytes(self) -> int:
        """Bytes of the segment's files on disk (tombstones included)."""
        total = 0
        names = [segment_file_name(self.segment_id, e) for e in SEGMENT_EXTENSIONS]
        if self.persisted_tombstones:
            names.append(self.persisted_tombstones)
        for name in names:
            path = os.path.join(self.directory, name)
            if os.path.exists(path):
                total += os.path.getsize(path)
        return total

    def memory_bytes(self) -> int:
        """Estimated memory held (tombstones, graph, columns, id hash index)."""
        graph = self.hnsw_summary()[2] if self.hnsw is not None else 0
        cols = int(getattr(self._columns, "nbytes", 0)) if self._columns is not None else 0
        return int(
            self.dead.nbytes + graph + cols + (self.ids.hashes.nbytes + self.ids.order.nbytes)
        )


def _pad(a: np.ndarray, width: int, fill: float) -> np.ndarray:
    if a.shape[1] >= width:
        return a.copy()
    out = np.full((a.shape[0], width), fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out
