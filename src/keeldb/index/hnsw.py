"""HNSW graphs with faiss (:class:`HnswIndex`): build, extend, persist, load, search, stats.

Graph storage, chosen per collection (``quantization``, docs/params.md): the graph keeps
its own copy of the vectors, walked by faiss,

* ``none``: float32 (``IndexHNSWFlat``): its scores are exact;
* ``fp16``: float16 (``IndexHNSWSQ``, ``QT_fp16``): half the bytes per distance, about
  1.4x faster at the same ``ef`` with the same recall on real embeddings
  (docs/benchmarks.md). The default under ``cosine`` (unit vectors fit its range); under
  ``l2`` and ``ip`` a component past 65504 overflows (it is clamped: the walk is then
  approximate there, the returned distances are still exact);
* ``sq8``: one byte per component (``IndexHNSWSQ``, ``QT_8bit``: a per-dimension
  [min, max] range trained on the vectors the graph is first built from; later
  vectors outside it are clamped, which only blurs the walk).

The segment re-scores a reduced graph's candidates against its float32 ``.vec`` rows, so
returned distances and their order are exact under every kind; an ``sq8`` walk returns
more candidates than asked (:meth:`HnswIndex.candidates`) to make up for its coarser
scores.

File layout (``docs/format.md``): faiss's own serialisation of the index, unchanged, then a
64-byte KeelDB trailer (the framed-file header struct, magic ``KEELHNSW``, version 1 / 2 /
3 for float32 / float16 / sq8) holding the row count, dimension, the length of faiss's
bytes, the length of the *graph region* (everything before the stored vectors) and
separate CRC32C checksums of the graph region and the vector (storage) region. faiss
ignores bytes after its own.

The graph region is verified before faiss ever parses it: a damaged graph could make faiss
follow a neighbour id out of range and crash the process. The storage region (a copy of
the segment's vectors) is memory-mapped by faiss (``IO_FLAG_MMAP_IFC``) and verified by
the scrubber and ``keeldb check``, like the ``.vec`` file.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np

from keeldb.errors import CorruptionError, translate_os_error
from keeldb.index.base import Allowed, faiss_metric
from keeldb.index.exact import similarity_to_distance
from keeldb.index.threads import run_searching
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    HNSW_FP16_VERSION,
    HNSW_SQ8_VERSION,
    MAGIC_HNSW,
)
from keeldb.storage.framed import (
    FrameHeader,
    crc32c,
    crc32c_of_file_range,
    pack_header,
    unpack_header,
)
from keeldb.storage.manifest import default_quantization

__all__ = ["SQ8_CANDIDATE_FACTOR", "STORAGE_KINDS", "HnswIndex", "HnswStats", "add_rows"]

# An ``sq8`` walk returns this many times ``k`` candidates (at most ``max(ef, k)``) for
# re-scoring: its 8-bit scores misorder near-ties that float32 re-scoring then puts right
# (measured on 20k x 384 pypi rows at ef 16: recall@10 0.879 re-scoring 10, 0.900
# re-scoring 20).
SQ8_CANDIDATE_FACTOR = 2


@dataclass(frozen=True, slots=True)
class _Storage:
    """How a graph keeps its copy of the vectors: the trailer version marking it and the
    faiss constructor (dimension, m, faiss metric) -> index (untrained for ``sq8``)."""

    version: int
    make: Callable[[int, int, int], Any]


# The storage kinds of a graph, by the collection's ``quantization`` name.
STORAGE_KINDS: dict[str, _Storage] = {
    "none": _Storage(FORMAT_VERSION, lambda d, m, mt: faiss.IndexHNSWFlat(d, m, mt)),
    "fp16": _Storage(
        HNSW_FP16_VERSION,
        lambda d, m, mt: faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, m, mt),
    ),
    "sq8": _Storage(
        HNSW_SQ8_VERSION,
        lambda d, m, mt: faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, m, mt),
    ),
}
_QTYPES = {
    int(faiss.ScalarQuantizer.QT_fp16): "fp16",
    int(faiss.ScalarQuantizer.QT_8bit): "sq8",
}


def add_rows(index: Any, vectors: np.ndarray, progress: Callable[[int], None] | None) -> None:
    """Insert ``vectors`` into the faiss ``index`` in one faiss call, then report
    ``progress(len(vectors))`` when asked. Always one call: faiss inserts each call's rows
    highest level first, so adding in chunks (to report progress during the insertion)
    builds another graph, measured at recall@10 0.9630 against 0.9677 on 100k x 384
    (ef 64), and a graph must not depend on whether anyone watched it being built."""
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    if progress is not None:
        progress(len(vectors))


@dataclass(frozen=True, slots=True)
class HnswStats:
    """A graph's shape: nodes per level, average level-0 out-degree, memory estimate."""

    levels: dict[int, int]
    avg_edges: float
    memory_bytes: int


_PARAMS: dict[int, Any] = {}


class HnswIndex:
    """A faiss HNSW graph over a unit's rows (label i is row i), searched with KeelDB
    distances; a :class:`~keeldb.index.base.VectorIndex`.

    Made by :meth:`build` (in memory, owned) or :meth:`load` (a verified file, memory
    mapped read-only: ``header`` and ``path`` are then set). ``metric`` is the
    collection's (it turns faiss scores into distances; cosine and ip share a faiss
    metric, so it is not read from the file). Thread-safe for searches.
    """

    __slots__ = ("_quantization", "_stats", "header", "index", "metric", "path")

    def __init__(
        self,
        index: Any,
        metric: str,
        header: FrameHeader | None = None,
        path: str | None = None,
    ) -> None:
        self.index = index
        self.metric = metric
        self.header = header
        self.path = path
        self._stats: HnswStats | None = None
        self._quantization: str | None = None  # read from the index at first use

    # --- making ---------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        metric: str,
        m: int,
        ef_construction: int,
        progress: Callable[[int], None] | None = None,
        quantization: str | None = None,
    ) -> HnswIndex:
        """A new graph over ``vectors`` (label i is row i), keeping them as
        ``quantization`` says (one of :data:`STORAGE_KINDS`; None: the metric's default,
        :func:`~keeldb.storage.manifest.default_quantization`). An ``sq8`` graph's
        quantiser is trained on ``vectors`` first. ``progress(rows_added)``: see
        :func:`add_rows`."""
        kind = STORAGE_KINDS[quantization or default_quantization(metric)]
        index = kind.make(vectors.shape[1], m, faiss_metric(metric))
        index.hnsw.efConstruction = ef_construction
        if not index.is_trained:
            index.train(np.ascontiguousarray(vectors, dtype=np.float32))
        add_rows(index, vectors, progress)
        return cls(index, metric)

    def extend(
        self, vectors: np.ndarray, progress: Callable[[int], None] | None = None
    ) -> HnswIndex:
        """This (loaded) graph's file read into owned memory, with ``vectors`` added
        (labels continue after its rows); the graph keeps its storage kind.

        This mapped index is untouched, so searches keep using it during the build; only
        the new vectors are inserted into the graph (a merge does not rebuild old rows).
        An owned copy is required: faiss aborts the process when asked to grow a mapped
        index (``MaybeOwnedVector::resize`` on a view), and ``clone_index`` keeps the view.
        ``progress(rows_added)``: see :func:`add_rows`.
        """
        assert self.path is not None, "extend reads the graph's file"
        index = faiss.read_index(self.path)
        add_rows(index, vectors, progress)
        return HnswIndex(index, self.metric)

    @classmethod
    def load(cls, path: str, rows: int, dim: int, metric: str) -> HnswIndex:
        """Verify the trailer and graph region of ``path``, then let faiss map it.

        Raises CorruptionError (file and offset) on any mismatch, including a row count or
        dimension that disagrees with the segment's.
        """
        header = _verified_trailer(path, rows, dim)
        try:
            index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError as exc:
            raise CorruptionError(f"faiss cannot read the index: {exc}", path=path) from exc
        if index.ntotal != rows or index.d != dim:
            raise CorruptionError("HNSW index size disagrees with its trailer", path=path)
        loaded = cls(index, metric, header, path)
        if STORAGE_KINDS[loaded.quantization].version != header.version:
            raise CorruptionError(
                f"HNSW trailer version {header.version} disagrees with the index kind", path=path
            )
        return loaded

    def save(self, fs: FileSystem, path: str) -> int:
        """Write the graph with its KeelDB trailer to the new file ``path``; returns bytes."""
        index = self.index
        blob = faiss.serialize_index(index)
        storage_len = faiss.serialize_index(index.storage).nbytes
        total = blob.nbytes
        graph_len = total - storage_len
        view = blob.data.cast("B")
        trailer = pack_header(
            FrameHeader(
                MAGIC_HNSW,
                STORAGE_KINDS[self.quantization].version,
                0,
                index.ntotal,
                index.d,
                total,
                crc32c(view[:graph_len]),
                crc32c(view[graph_len:]),
                graph_len,
            )
        )
        fs.write_new(path, [view, trailer])
        return int(total) + HEADER_SIZE

    # --- reordering (merge) -----------------------------------------------------------------

    def locality_order(self) -> np.ndarray:
        """A breadth-first order of the level-0 graph from its entry point (then from
        each row not yet reached): ``order[new] = old``. Renumbering rows in this order
        puts rows a search visits together next to each other in memory (graph
        reordering), so a search touches fewer pages and cache lines; the graph itself is
        unchanged.

        Level-synchronous, vectorised: each level's new rows are its frontier's neighbour
        lists concatenated, first occurrences kept in order (what a FIFO queue would give).
        """
        hnsw = self.index.hnsw
        n = int(self.index.ntotal)
        if n == 0:
            return np.empty(0, dtype=np.int64)
        offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
        neighbors = faiss.vector_to_array(hnsw.neighbors)
        width = int(faiss.vector_to_array(hnsw.cum_nneighbor_per_level)[1])
        level0 = neighbors[offsets[:n, None] + np.arange(width)]
        entry = int(hnsw.entry_point)
        return _breadth_first(level0, entry if 0 <= entry < n else 0)

    def permute(self, order: np.ndarray) -> None:
        """Renumber the rows (an owned graph): new row i is old row ``order[i]``."""
        self.index.permute_entries(order)
        self._stats = None

    def stored_vectors(self) -> np.ndarray:
        """A read-only (n, d) float32 view of the vectors a float32 graph stores (valid
        while this index lives and is not changed). Only when :attr:`exact_scores`."""
        assert self.exact_scores
        storage = faiss.downcast_index(self.index.storage)
        n, d = int(self.index.ntotal), int(self.index.d)
        view: np.ndarray = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)
        view.flags.writeable = False
        return view

    def decoded_vectors(self) -> np.ndarray:
        """A fresh (n, d) float32 copy of every vector the graph stores, decoded: exact
        for a float32 graph, approximations for a reduced one (repair reads
        vectors from here when a segment's ``.vec`` is damaged)."""
        n = int(self.index.ntotal)
        return np.asarray(self.index.reconstruct_n(0, n), dtype=np.float32).reshape(n, -1)

    # --- reading ------------------------------------------------------------------------------

    @property
    def quantization(self) -> str:
        """How the graph keeps its vectors: ``none`` (float32), ``fp16`` or ``sq8``.
        Read from the index once (a search asks for it; the index kind never changes)."""
        found = self._quantization
        if found is None:
            found = self._quantization = self._read_quantization()
        return found

    def _read_quantization(self) -> str:
        index = self.index
        if isinstance(index, faiss.IndexHNSWFlat):
            return "none"
        if isinstance(index, faiss.IndexHNSWSQ):
            qtype = int(faiss.downcast_index(index.storage).sq.qtype)
            if qtype in _QTYPES:
                return _QTYPES[qtype]
        raise CorruptionError(f"unexpected HNSW index kind {type(index).__name__}", path=self.path)

    @property
    def exact_scores(self) -> bool:
        """The graph keeps float32 vectors, so its scores are exact (else reduced)."""
        return isinstance(self.index, faiss.IndexHNSWFlat)

    def candidates(self, k: int, ef: int) -> int:
        """How many rows a walk for the top ``k`` at width ``ef`` returns for re-scoring:
        ``k``, or for an ``sq8`` graph up to :data:`SQ8_CANDIDATE_FACTOR` times that,
        never widening the walk past ``max(ef, k)``."""
        if self.quantization != "sq8":
            return k
        return max(k, min(SQ8_CANDIDATE_FACTOR * k, ef))

    @property
    def storage_bytes(self) -> int:
        """Bytes of the file's vector (storage) region (0 when not loaded from a file)."""
        if self.header is None:
            return 0
        return int(self.header.payload_len - self.header.aux3)

    def verify_storage(self) -> None:
        """Check the CRC of the vector region (deferred at load). Raises CorruptionError."""
        assert self.header is not None and self.path is not None
        start = self.header.aux3
        crc = crc32c_of_file_range(self.path, start, self.header.payload_len - start)
        if crc != self.header.aux2:
            raise CorruptionError(
                "HNSW vector region checksum mismatch", path=self.path, offset=start
            )

    def search(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Walk the graph with ``efSearch = max(ef, k)`` among ``allowed`` rows (None:
        all). Returns (distances, rows), rows -1 for missing hits after the found ones;
        distances are approximate (float16 copies) unless :attr:`exact_scores`."""
        scores, labels = self.search_scores(queries, k, ef, allowed)
        return similarity_to_distance(self.metric, scores), labels

    def search_rows(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None
    ) -> np.ndarray:
        """The rows :meth:`search` finds, without their distances (for a caller that
        re-scores them against float32 vectors)."""
        return self.search_scores(queries, k, ef, allowed)[1]

    def search_scores(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` with faiss's raw scores (inner product or squared L2)."""
        ef = max(ef, k)
        index = self.index
        if allowed is None:
            # Parameter objects without a selector are read-only during a search, so one
            # per ef value is shared by all threads (building one costs as much as a small
            # search).
            params = _PARAMS.get(ef)
            if params is None:
                params = faiss.SearchParametersHNSW()
                params.efSearch = ef
                if len(_PARAMS) < 4096:
                    _PARAMS[ef] = params
            return _search_c(index, queries, k, params)
        bitmap = allowed.bitmap()
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        selector = faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(bitmap))
        params.sel = selector
        scores, labels = _search_c(index, queries, k, params)
        del selector  # kept alive until here: faiss holds only a raw pointer
        return scores, labels

    @staticmethod
    def counters() -> tuple[int, int]:
        """faiss's global HNSW counters (distances computed, hops). Shared by every
        thread, so concurrent searches blur a difference of two readings."""
        stats = faiss.cvar.hnsw_stats
        return int(stats.ndis), int(stats.nhops)

    def stats(self) -> HnswStats:
        """Level distribution (level -> nodes), average level-0 out-degree, memory
        estimate; computed once, then kept."""
        if self._stats is None:
            self._stats = _graph_stats(self.index)
        return self._stats

    def memory_bytes(self) -> int:
        """The graph's and its stored vectors' bytes (:meth:`stats`)."""
        return self.stats().memory_bytes

    def owned_bytes(self) -> int:
        """Bytes of the index held in memory faiss owns, not mapped from its file: the
        offsets and levels always; the links and the stored vectors only when not mapped
        (a built or extended graph, not yet loaded from a file)."""
        index = self.index
        graph = index.hnsw
        owned = graph.offsets.size() * 8 + graph.levels.size() * 4
        if graph.neighbors.is_owned:
            owned += graph.neighbors.size() * 4
        codes = getattr(faiss.downcast_index(index.storage), "codes", None)
        if codes is not None and codes.is_owned:
            owned += codes.size()
        return int(owned)


def _breadth_first(level0: np.ndarray, entry: int) -> np.ndarray:
    """Rows in breadth-first order over the neighbour lists ``level0`` (n, width; -1 for
    none) from ``entry``, then from the first row not yet reached, until all are."""
    n = len(level0)
    seen = np.zeros(n, dtype=bool)
    parts: list[np.ndarray] = []
    frontier = np.array([entry], dtype=np.int64)
    seen[frontier] = True
    next_unseen = 0
    while True:
        parts.append(frontier)
        found = level0[frontier].ravel()
        found = found[found >= 0]
        found = found[~seen[found]]
        if len(found):
            uniq, first = np.unique(found, return_index=True)
            frontier = uniq[np.argsort(first, kind="stable")].astype(np.int64)
        else:
            unseen = np.flatnonzero(~seen[next_unseen:])
            if not len(unseen):
                break
            next_unseen += int(unseen[0])
            frontier = np.array([next_unseen], dtype=np.int64)
        seen[frontier] = True
    order = np.concatenate(parts)
    assert len(order) == n
    return order


def _verified_trailer(path: str, rows: int, dim: int) -> FrameHeader:
    """The trailer of the graph file ``path``, checked against ``rows`` / ``dim``, with
    the graph region's checksum verified (before faiss ever parses it)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_SIZE:
                raise CorruptionError("HNSW file too short", path=path, offset=0)
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                view = memoryview(mm)
                try:
                    header = unpack_header(
                        view[size - HEADER_SIZE :],
                        MAGIC_HNSW,
                        path,
                        size - HEADER_SIZE,
                        (FORMAT_VERSION, HNSW_FP16_VERSION, HNSW_SQ8_VERSION),
                    )
                    if header.payload_len != size - HEADER_SIZE:
                        raise CorruptionError(
                            "HNSW length mismatch", path=path, offset=size - HEADER_SIZE
                        )
                    if header.rows != rows or header.aux != dim or header.aux3 > header.payload_len:
                        raise CorruptionError(
                            f"HNSW trailer rows/dim {header.rows}/{header.aux} != {rows}/{dim}",
                            path=path,
                            offset=size - HEADER_SIZE,
                        )
                    if crc32c(view[: header.aux3]) != header.payload_crc:
                        raise CorruptionError("HNSW graph checksum mismatch", path=path, offset=0)
                finally:
                    view.release()
    except OSError as exc:
        raise translate_os_error(exc, f"read {path}") from exc
    return header


def _search_c(
    index: Any, queries: np.ndarray, k: int, params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` without the Python wrapper's checks and conversions (a tenth of a
    small search): the caller's queries are already validated (q, d) float32."""
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    n = xq.shape[0]
    scores = np.empty((n, k), dtype=np.float32)
    labels = np.empty((n, k), dtype=np.int64)
    args = (n, faiss.swig_ptr(xq), k, faiss.swig_ptr(scores), faiss.swig_ptr(labels), params)
    # faiss walks the graph for one query on the calling thread (``omp parallel if
    # (i1 - i0 > 1)`` in IndexHNSW.cpp)
    run_searching(index.search_c, args, n, 1)
    return scores, labels


def _graph_stats(index: Any) -> HnswStats:
    hnsw = index.hnsw
    n = index.ntotal
    if n == 0:
        return HnswStats({}, 0.0, 0)
    levels = faiss.vector_to_array(hnsw.levels)
    counts = np.bincount(levels.astype(np.int64) - 1)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors)
    width0 = hnsw.nb_neighbors(0)
    slots = offsets[:-1, None] + np.arange(width0)[None, :]
    edges0 = int(np.count_nonzero(neighbors[slots] >= 0))
    code_size = int(faiss.downcast_index(index.storage).code_size)  # bytes per stored vector
    memory = int(neighbors.nbytes + offsets.nbytes + levels.nbytes + n * code_size)
    return HnswStats({i: int(c) for i, c in enumerate(counts) if c}, edges0 / n, memory)
