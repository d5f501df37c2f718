"""Sealed segments: immutable vectors, ids, metadata, filter columns and (maybe) an HNSW
graph, plus a mutable tombstone set. :func:`write_segment` creates the files;
:class:`Segment` maps them for search.

Planner (per segment, see ``docs/filtering.md``): with a filter, the rows passing
``filter ∧ live`` are counted (cached per filter); ``ef`` is raised as the pass rate drops;
a cost model (:func:`choose_plan`, constants measured on the reference machine) picks an
exact scan of just those rows, an HNSW walk with a bitmap selector, or (for a filter in
repeated use) a scan of a compact fp16 copy of its rows re-ranked exactly; any query that comes
back with fewer than ``min(k, count)`` hits is answered exactly instead, so a filtered
search returns k hits whenever k rows match.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
import orjson

from keeldb.errors import CorruptionError, StorageError
from keeldb.index.exact import (
    SUBSET_IN_PLACE_MAX_QUERIES,
    exact_rerank,
    exact_search,
    rescore,
    similarity_to_distance,
)
from keeldb.index.hnsw import HnswFile, build_hnsw, hnsw_stats, load_hnsw, save_hnsw, search_hnsw
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import SEGMENT_EXTENSIONS, TMP_SUFFIX, segment_file_name
from keeldb.storage.manifest import CollectionConfig, SegmentEntry
from keeldb.storage.segment_files import (
    IdTable,
    MetadataTable,
    map_vectors,
    read_columns,
    read_tombstones,
    write_columns,
    write_ids,
    write_metadata,
    write_vectors,
)

log = logging.getLogger("keeldb")

__all__ = ["Segment", "UnitResult", "choose_plan", "write_segment"]

# Planner cost model (microseconds per unit of work), measured on the reference 2-core
# machine by bench/planner.py and recorded in docs/filtering.md:
# * an exact scan of a row subset in place reads each row once: memory-bound,
#   EXACT_US_PER_ROW_DIM per row and dimension once the rows exceed the caches;
# * a batch of queries gathers the rows once and runs one BLAS product:
#   GEMM_US_PER_ROW_DIM per row, dimension and query, plus the gather;
# * an HNSW walk computes about HNSW_NDIS_COEF * ef ** HNSW_NDIS_EXP distances (faiss
#   counters, 100k x 384 graph, m = 16) at HNSW_US_PER_DIS_DIM each per dimension on a
#   float32 graph, HNSW16_US_PER_DIS_DIM on a float16 (cosine) graph: 0.72x, the ratio of
#   the two graphs' per-distance costs measured side by side by bench/planner.py (its
#   runs at 25f3784: 5.6e-4 and 4.0e-4 at ef 64 - 128, on a faster phase of the machine
#   than the run that gave the constants here).
EXACT_US_PER_ROW_DIM = 6.0e-4
GEMM_US_PER_ROW_DIM = 1.7e-4
HNSW_US_PER_DIS_DIM = 7.8e-4
HNSW16_US_PER_DIS_DIM = 0.72 * HNSW_US_PER_DIS_DIM
HNSW_NDIS_COEF = 40.0
HNSW_NDIS_EXP = 0.82
# Tombstones and filters hide rows from the graph walk; ef is raised to
# ef / pass_rate ** FILTER_EF_EXPONENT (capped) to keep finding k allowed rows.
FILTER_EF_EXPONENT = 0.4
FILTER_EF_CAP = 2048


# A filter used at least COMPACT_MIN_USES times on a segment may get a *compact* copy of
# its allowed rows: a faiss fp16 flat index over just those rows (half the bytes of the
# float32 vectors, contiguous, scanned with SIMD), whose best candidates are re-ranked
# with exact float32 distances. It lives in the filter cache and counts against its
# budget; at most COMPACT_MAX_BYTES each.
COMPACT_MIN_USES = 3
COMPACT_MAX_BYTES = 32 << 20
COMPACT_US_PER_ROW_DIM = 6.2e-5
COMPACT_RERANK_FACTOR = 4


def choose_plan(
    count: int, ef: int, queries: int, dim: int, compact: bool, fp16: bool = False
) -> str:
    """The cheapest of ``exact``, ``hnsw`` and (when ``compact`` is allowed) ``compact``
    for ``queries`` queries over ``count`` allowed rows (the cost model above); ``fp16``:
    the segment's graph keeps float16 vectors."""
    per_dis = HNSW16_US_PER_DIS_DIM if fp16 else HNSW_US_PER_DIS_DIM
    costs = {"hnsw": queries * HNSW_NDIS_COEF * ef**HNSW_NDIS_EXP * per_dis * dim}
    if queries > SUBSET_IN_PLACE_MAX_QUERIES:
        costs["exact"] = count * dim * (EXACT_US_PER_ROW_DIM + queries * GEMM_US_PER_ROW_DIM)
    else:
        costs["exact"] = queries * count * dim * EXACT_US_PER_ROW_DIM
    if compact:
        costs["compact"] = queries * count * dim * COMPACT_US_PER_ROW_DIM
    return min(costs, key=costs.__getitem__)


# Per-segment cache of filter masks (Lucene's query cache idea: a segment's rows never
# change, so a filter's mask stays valid; only the deleted set is re-applied when it
# changes). Entries are evicted least-recently-used.
MASK_CACHE_ENTRIES = 32
MASK_CACHE_BYTES = 64 << 20


@dataclass(slots=True)
class FilterState:
    """A filter's rows in one segment, given its deleted set at ``dead_version``."""

    match: np.ndarray  # rows passing the filter (read-only)
    dead_version: int
    allowed: np.ndarray  # match and live
    count: int
    bitmap: np.ndarray | None = None  # packed allowed, for faiss's selector
    rows: np.ndarray | None = None  # allowed row numbers, for exact scans
    uses: int = 0  # searches that used this filter on this segment
    compact: Any = None  # fp16 flat index over exactly the allowed rows (see search)


@dataclass(slots=True)
class UnitResult:
    """Top-k of one searched unit: distances (q, k'), rows (q, k') with -1 for none."""

    distances: np.ndarray
    rows: np.ndarray
    plan: str
    work: int  # distance computations (exact rows, or faiss ndis)
    hops: int


def write_segment(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    config: CollectionConfig,
    vectors: np.ndarray,
    ids: list[str],
    metadata_json: list[bytes],
    metadata: list[dict[str, Any]] | None,
    index: faiss.Index | None,
    hashes: np.ndarray | None = None,
    vector_order: np.ndarray | None = None,
) -> int:
    """Write every file of a new segment (fsynced, under final names). Returns bytes.

    ``hashes`` are the ids' ``id_hashes`` when the caller already has them. With
    ``vector_order``, row i's vector is ``vectors[vector_order[i]]`` (the other arguments
    are already in the segment's row order).

    The filter-column file is written when ``metadata`` (the decoded rows) is given: for
    HNSW segments. A flat segment is short-lived (merged into HNSW as the collection
    grows) and builds its columns in memory on its first filtered search instead; a seal
    does not spend its time (and the writers' GIL) on them.
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
        total += save_hnsw(
            fs, os.path.join(directory, segment_file_name(segment_id, "hnsw")), index
        )
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


def remove_segment_files(fs: FileSystem, directory: str, segment_id: int) -> None:
    for ext in SEGMENT_EXTENSIONS:
        fs.remove(os.path.join(directory, segment_file_name(segment_id, ext)))


class Segment:
    """A sealed segment mapped for reading. Thread-safe for readers; ``dead`` is changed
    only under the collection's write lock (rows only ever go from live to dead)."""

    def __init__(
        self, fs: FileSystem, directory: str, entry: SegmentEntry, config: CollectionConfig
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
        self._sq_norms: np.ndarray | None = None
        self._stats: Any = None
        self.vectors = map_vectors(directory, self.segment_id, self.rows, config.dim)
        try:
            self.ids = IdTable(directory, self.segment_id, self.rows)
            self.meta = MetadataTable(directory, self.segment_id, self.rows)
            if entry.tombstones:
                self.dead = read_tombstones(fs, directory, entry.tombstones, self.rows)
            else:
                self.dead = np.zeros(self.rows, dtype=bool)
        except BaseException:
            # The vector array still views the map: it is unmapped when the array goes.
            # (Closing it here raised BufferError, hiding the real error.)
            del self.vectors
            raise
        self.dead_count = int(np.count_nonzero(self.dead))
        self.dead_version = 0  # bumped whenever a row dies (invalidates filter states)
        self._filters: OrderedDict[bytes, FilterState] = OrderedDict()
        self._filter_bytes = 0
        self.persisted_tombstones = entry.tombstones
        self.persisted_dead_count = self.dead_count
        self.hnsw: HnswFile | None = None
        self.payloads_verified = False
        self.rebuilt_index = False
        if self.kind == "hnsw":
            self._load_or_rebuild_index()

    # --- lifecycle ---------------------------------------------------------------------

    def _hnsw_path(self) -> str:
        return os.path.join(self.directory, segment_file_name(self.segment_id, "hnsw"))

    def _load_or_rebuild_index(self) -> None:
        path = self._hnsw_path()
        try:
            if not os.path.exists(path):
                raise CorruptionError("HNSW file is missing", path=path)
            self.hnsw = load_hnsw(path, self.rows, self.config.dim)
            return
        except CorruptionError as exc:
            log.warning(
                "segment %d: %s; rebuilding the HNSW index from its vectors", self.segment_id, exc
            )
        # The index is derived data: rebuild it from the (verified) vectors.
        self.vectors.verify()
        index = build_hnsw(
            self.vectors.array, self.metric, self.config.m, self.config.ef_construction
        )
        tmp = path + TMP_SUFFIX
        self.fs.remove(tmp)
        save_hnsw(self.fs, tmp, index)
        self.fs.rename(tmp, path)
        self.fs.sync_dir(self.directory)
        self.hnsw = load_hnsw(path, self.rows, self.config.dim)
        self.rebuilt_index = True

    def close(self) -> None:
        self.hnsw = None
        self._columns = None
        self.ids.close()
        self.meta.close()
        # The vector map may still be referenced by a search in flight; the OS keeps the
        # mapping alive until the last numpy view is gone.

    def entry(self, tombstones: str | None) -> SegmentEntry:
        return SegmentEntry(self.segment_id, self.rows, self.kind, tombstones)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the large payloads whose checksum may be deferred at open."""
        hnsw = self.hnsw
        extra = 0 if hnsw is None else int(hnsw.header.payload_len - hnsw.header.aux3)
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

    # --- reads -------------------------------------------------------------------------

    @property
    def live_count(self) -> int:
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

    def filter_mask(self, flt: Any) -> np.ndarray:
        """Rows passing ``flt`` (read-only bool array; cached when ``flt`` has a ``key``)."""
        return self.filter_state(flt).match

    def filter_state(self, flt: Any) -> FilterState:
        """The filter's match mask, live matching rows and their count, cached per
        filter ``key`` (canonical filter JSON) and refreshed when rows die."""
        key: bytes | None = getattr(flt, "key", None)
        version = self.dead_version
        state = None
        if key is not None:
            with self._lock:
                state = self._filters.get(key)
                if state is not None:
                    self._filters.move_to_end(key)
                    if state.dead_version == version:
                        return state
        uses = 0
        if state is not None:
            match = state.match
            uses = state.uses
        else:
            match = flt.mask(self.columns())
            match.flags.writeable = False
        allowed = match & ~self.dead if self.dead_count else match
        fresh = FilterState(match, version, allowed, int(np.count_nonzero(allowed)), uses=uses)
        if key is not None:
            with self._lock:
                old = self._filters.pop(key, None)
                if old is not None:
                    self._filter_bytes -= _state_bytes(old)
                self._filters[key] = fresh
                self._filter_bytes += _state_bytes(fresh)
                while self._filters and (
                    len(self._filters) > MASK_CACHE_ENTRIES or self._filter_bytes > MASK_CACHE_BYTES
                ):
                    _, evicted = self._filters.popitem(last=False)
                    self._filter_bytes -= _state_bytes(evicted)
        return fresh

    def sq_norms(self) -> np.ndarray:
        if self._sq_norms is None:
            v = self.vectors.array
            self._sq_norms = np.einsum("ij,ij->i", v, v)
        return self._sq_norms

    def vector_at(self, row: int) -> np.ndarray:
        return np.array(self.vectors.array[row], dtype=np.float32, copy=True)

    def metadata_at(self, row: int) -> dict[str, Any]:
        return self.meta.at(row)

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

    def locate(self, ids: list[str], hashes: np.ndarray) -> dict[int, int]:
        """Live rows of ``ids`` here: {index in ids: row}."""
        found: dict[int, int] = {}
        table = self.ids
        sorted_hashes = table.hashes
        if len(sorted_hashes) == 0:
            return found
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
        dead_count = self.dead_count
        fstate: FilterState | None = None
        match: np.ndarray | None = None
        if flt is None:
            allowed = None if dead_count == 0 else ~self.dead
            count = self.rows - dead_count
        else:
            fstate = self.filter_state(flt)
            match = fstate.match
            allowed = fstate.allowed
            count = fstate.count
        if count == 0:
            q = len(queries)
            return UnitResult(
                np.empty((q, 0), np.float32), np.empty((q, 0), np.int64), "empty", 0, 0
            )
        norms = self.sq_norms() if self.metric == "l2" else None
        vectors = self.vectors.array
        ef_eff = ef
        if allowed is not None:
            pass_rate = count / self.rows
            ef_eff = min(max(ef, int(ef / pass_rate**FILTER_EF_EXPONENT)), max(ef, FILTER_EF_CAP))
        plan = "hnsw"
        if exact:
            plan = "exact"
        elif fstate is not None:
            fstate.uses += 1
            compact_ok = fstate.compact is not None or (
                fstate.uses >= COMPACT_MIN_USES
                and count * self.config.dim * 2 <= COMPACT_MAX_BYTES
                and count > COMPACT_RERANK_FACTOR * k
            )
            fp16 = hnsw is not None and not hnsw.exact_scores
            plan = choose_plan(count, ef_eff, len(queries), self.config.dim, compact_ok, fp16)
            if plan == "compact":
                return self._search_compact(fstate, queries, k)
        if hnsw is None or plan == "exact":
            if match is None:
                exclude = self.dead if dead_count else None
                d, r = exact_search(
                    vectors, queries, k, self.metric, exclude=exclude, sq_norms=norms
                )
                return UnitResult(d, r, "exact", self.rows * len(queries), 0)
            assert fstate is not None  # filtering here
            if fstate.rows is None:
                fstate.rows = np.flatnonzero(fstate.allowed)
            d, r = exact_search(vectors, queries, k, self.metric, rows=fstate.rows, sq_norms=norms)
            return UnitResult(d, r, "exact-filtered", count * len(queries), 0)
        bitmap = None
        if allowed is not None:
            if fstate is not None:
                if fstate.bitmap is None:
                    fstate.bitmap = np.packbits(allowed, bitorder="little")
                bitmap = fstate.bitmap
            else:
                bitmap = np.packbits(allowed, bitorder="little")
        if want_stats:
            stats = faiss.cvar.hnsw_stats
            ndis0, hops0 = stats.ndis, stats.nhops
        scores, labels = search_hnsw(hnsw.index, queries, k, ef_eff, bitmap)
        work = hops = 0
        if want_stats:
            work, hops = max(stats.ndis - ndis0, 0), max(stats.nhops - hops0, 0)
        if hnsw.exact_scores:
            dist = similarity_to_distance(self.metric, scores)
        else:
            # A float16 graph: score the rows it found against their float32 vectors,
            # so distances (and their order) are exact, as from every other unit.
            dist, labels = rescore(vectors, queries, self.metric, labels)
            if want_stats:
                work += int(np.count_nonzero(labels >= 0))  # the re-scoring distances
        missing = labels < 0
        plan = "hnsw" if match is None else "hnsw-filtered"
        if not missing.any():
            return UnitResult(dist, labels, plan, work, hops)
        dist[missing] = np.inf
        want = min(k, count)
        short = np.flatnonzero((~missing).sum(axis=1) < want)
        if len(short):
            # HNSW could not reach k allowed rows (heavy filtering or deletes): answer
            # those queries exactly, so k hits come back whenever k rows qualify.
            rows = np.flatnonzero(allowed) if allowed is not None else np.arange(self.rows)
            d2, r2 = exact_search(
                vectors, queries[short], k, self.metric, rows=rows, sq_norms=norms
            )
            width = max(labels.shape[1], r2.shape[1])
            dist = _pad(dist, width, np.inf)
            labels = _pad(labels, width, -1)
            dist[short, : d2.shape[1]] = d2
            labels[short, : r2.shape[1]] = r2
            plan += "+exact-fallback"
            work += len(rows) * len(short)
        return UnitResult(dist, labels, plan, work, hops)

    def _search_compact(self, fstate: FilterState, queries: np.ndarray, k: int) -> UnitResult:
        """Scan the filter's compact fp16 copy, then re-rank the best candidates with
        exact float32 distances (so returned distances are exact)."""
        if fstate.rows is None:
            fstate.rows = np.flatnonzero(fstate.allowed)
        rows = fstate.rows
        if fstate.compact is None:
            metric = faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT
            index = faiss.IndexScalarQuantizer(
                self.config.dim, faiss.ScalarQuantizer.QT_fp16, metric
            )
            index.add(self.vectors.array[rows])
            fstate.compact = index
            with self._lock:
                if any(s is fstate for s in self._filters.values()):
                    self._filter_bytes += len(rows) * self.config.dim * 2
        cand_k = min(len(rows), max(COMPACT_RERANK_FACTOR * k, 40))
        _, local = fstate.compact.search(queries, cand_k)
        candidates = rows[np.maximum(local, 0)]
        d, r = exact_rerank(self.vectors.array, queries, k, self.metric, candidates)
        work = len(queries) * (len(rows) + cand_k)
        return UnitResult(d, r, "compact-filtered", work, 0)

    # --- stats ---------------------------------------------------------------------------

    def hnsw_summary(self) -> tuple[dict[int, int], float, int]:
        if self.hnsw is None:
            return {}, 0.0, 0
        with self._lock:
            if self._stats is None:
                self._stats = hnsw_stats(self.hnsw.index)
        return self._stats.levels, self._stats.avg_edges, self._stats.memory_bytes

    def disk_bytes(self) -> int:
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
        graph = self.hnsw_summary()[2] if self.hnsw is not None else 0
        cols = int(getattr(self._columns, "nbytes", 0)) if self._columns is not None else 0
        return int(
            self.dead.nbytes + graph + cols + (self.ids.hashes.nbytes + self.ids.order.nbytes)
        )


def _state_bytes(state: FilterState) -> int:
    extra = state.allowed.nbytes if state.allowed is not state.match else 0
    if state.compact is not None:
        extra += state.count * state.compact.d * 2
    return int(state.match.nbytes + extra)


def _pad(a: np.ndarray, width: int, fill: float) -> np.ndarray:
    if a.shape[1] >= width:
        return a.copy()
    out = np.full((a.shape[0], width), fill, dtype=a.dtype)
    out[:, : a.shape[1]] = a
    return out


def storage_error(exc: Exception) -> StorageError:
    return StorageError(str(exc))
