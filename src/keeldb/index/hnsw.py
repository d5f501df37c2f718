"""HNSW graphs with faiss: build, extend, persist, load, search, stats.

Graph storage: under ``cosine`` (unit vectors, every component in [-1, 1]) the graph keeps
its own copy of the vectors in float16 (``IndexHNSWSQ``, ``QT_fp16``): a search reads half
the bytes per distance, which makes it about 1.4x faster at the same ``ef`` with the same
recall on real embeddings (docs/benchmarks.md, the paired case), and the file is about
half as large. The
segment then re-scores each returned row against its float32 ``.vec`` row, so returned
distances and their order are exact. Under ``l2`` and ``ip`` the vectors' range is
unbounded (float16 overflows past 65504 and loses precision on large offsets), so the
graph keeps float32 (``IndexHNSWFlat``), as every segment did in 0.1.

File layout (``docs/format.md``): faiss's own serialisation of the index, unchanged, then a
64-byte KeelDB trailer (the framed-file header struct, magic ``KEELHNSW``) holding the
row count, dimension, the length of faiss's bytes, the length of the *graph region*
(everything before the stored vectors) and separate CRC32C checksums of the graph region
and the vector (storage) region. faiss ignores bytes after its own.

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
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import FORMAT_VERSION, HEADER_SIZE, HNSW_FP16_VERSION, MAGIC_HNSW
from keeldb.storage.framed import (
    FrameHeader,
    crc32c,
    crc32c_of_file_range,
    pack_header,
    unpack_header,
)

__all__ = [
    "HnswStats",
    "build_hnsw",
    "extend_hnsw",
    "load_hnsw",
    "save_hnsw",
    "search_hnsw",
    "stores_exact_vectors",
]


def faiss_metric(metric: str) -> int:
    return int(faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)


# Rows per faiss ``add`` call when the caller wants progress (see _add).
ADD_CHUNK_ROWS = 10_000


def build_hnsw(
    vectors: np.ndarray,
    metric: str,
    m: int,
    ef_construction: int,
    progress: Callable[[int], None] | None = None,
) -> faiss.Index:
    """A new HNSW index over ``vectors``; label i is row i. Under ``cosine`` the graph
    stores float16 copies (``IndexHNSWSQ``), else float32 (``IndexHNSWFlat``).
    ``progress(rows_added)``: see :func:`_add`."""
    d = vectors.shape[1]
    if metric == "cosine":
        index = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT)
    else:
        index = faiss.IndexHNSWFlat(d, m, faiss_metric(metric))
    index.hnsw.efConstruction = ef_construction
    _add(index, vectors, progress)
    return index


def _add(index: faiss.Index, vectors: np.ndarray, progress: Callable[[int], None] | None) -> None:
    """Insert ``vectors`` into ``index``. Without ``progress``, in one faiss call; with it,
    ``ADD_CHUNK_ROWS`` at a time, calling ``progress(rows added so far)`` after each
    chunk. faiss inserts each call's rows highest level first, so the chunked graph is
    not the one-call graph (neither is reproducible bit for bit with several threads);
    ``bench/hnsw_chunked_add.py`` compares the two (build time and recall, paired)."""
    if not len(vectors):
        return
    if progress is None:
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return
    for start in range(0, len(vectors), ADD_CHUNK_ROWS):
        stop = min(start + ADD_CHUNK_ROWS, len(vectors))
        index.add(np.ascontiguousarray(vectors[start:stop], dtype=np.float32))
        progress(stop)


def extend_hnsw(
    base_path: str, vectors: np.ndarray, progress: Callable[[int], None] | None = None
) -> faiss.Index:
    """The index stored at ``base_path`` (already verified by :func:`load_hnsw`), read into
    owned memory, with ``vectors`` added (labels continue after its rows).

    The live, memory-mapped index is untouched, so searches keep using it during the build;
    only the new vectors are inserted into the graph (a merge does not rebuild old rows).
    An owned copy is required: faiss aborts the process when asked to grow a mapped index
    (``MaybeOwnedVector::resize`` on a view), and ``clone_index`` keeps the view.
    """
    index = faiss.read_index(base_path)
    _add(index, vectors, progress)
    return index


def locality_order(index: faiss.Index) -> np.ndarray:
    """A breadth-first order of ``index``'s level-0 graph from its entry point (then from
    each row not yet reached): ``order[new] = old``. Renumbering rows in this order puts
    rows a search visits together next to each other in memory (graph reordering), so a
    search touches fewer pages and cache lines; the graph itself is unchanged.

    Level-synchronous, vectorised: each level's new rows are its frontier's neighbour
    lists concatenated, first occurrences kept in order (what a FIFO queue would give).
    """
    hnsw = index.hnsw
    n = int(index.ntotal)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    neighbors = faiss.vector_to_array(hnsw.neighbors)
    width = int(faiss.vector_to_array(hnsw.cum_nneighbor_per_level)[1])
    level0 = neighbors[offsets[:n, None] + np.arange(width)]
    seen = np.zeros(n, dtype=bool)
    parts: list[np.ndarray] = []
    entry = int(hnsw.entry_point)
    frontier = np.array([entry if 0 <= entry < n else 0], dtype=np.int64)
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


def stores_exact_vectors(index: faiss.Index) -> bool:
    """Whether ``index`` keeps the vectors in float32 (``IndexHNSWFlat``: its scores are
    exact); False for the float16 graphs of cosine segments (scores approximate)."""
    return isinstance(index, faiss.IndexHNSWFlat)


def stored_vectors(index: faiss.Index) -> np.ndarray:
    """A read-only (n, d) float32 view of the vectors an ``IndexHNSWFlat`` stores (valid
    while ``index`` lives and is not changed). Only for :func:`stores_exact_vectors`."""
    assert stores_exact_vectors(index)
    storage = faiss.downcast_index(index.storage)
    n, d = int(index.ntotal), int(index.d)
    view: np.ndarray = faiss.rev_swig_ptr(storage.get_xb(), n * d).reshape(n, d)
    view.flags.writeable = False
    return view


def save_hnsw(fs: FileSystem, path: str, index: faiss.Index) -> int:
    """Write ``index`` with its KeelDB trailer to the new file ``path``; returns bytes."""
    blob = faiss.serialize_index(index)
    storage_len = faiss.serialize_index(index.storage).nbytes
    total = blob.nbytes
    graph_len = total - storage_len
    view = blob.data.cast("B")
    trailer = pack_header(
        FrameHeader(
            MAGIC_HNSW,
            FORMAT_VERSION if stores_exact_vectors(index) else HNSW_FP16_VERSION,
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


@dataclass(slots=True)
class HnswFile:
    index: faiss.Index
    header: FrameHeader
    path: str

    @property
    def exact_scores(self) -> bool:
        """The graph keeps float32 vectors, so its scores are exact (else float16)."""
        return stores_exact_vectors(self.index)

    def verify_storage(self) -> None:
        """Check the CRC of the vector region (deferred at load). Raises CorruptionError."""
        start = self.header.aux3
        crc = crc32c_of_file_range(self.path, start, self.header.payload_len - start)
        if crc != self.header.aux2:
            raise CorruptionError(
                "HNSW vector region checksum mismatch", path=self.path, offset=start
            )


def load_hnsw(path: str, rows: int, dim: int) -> HnswFile:
    """Verify the trailer and graph region of ``path``, then let faiss map it.

    Raises CorruptionError (file and offset) on any mismatch, including a row count or
    dimension that disagrees with the segment's.
    """
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
                        (FORMAT_VERSION, HNSW_FP16_VERSION),
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
    try:
        index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError as exc:
        raise CorruptionError(f"faiss cannot read the index: {exc}", path=path) from exc
    if index.ntotal != rows or index.d != dim:
        raise CorruptionError("HNSW index size disagrees with its trailer", path=path)
    if stores_exact_vectors(index) != (header.version == FORMAT_VERSION):
        raise CorruptionError(
            f"HNSW trailer version {header.version} disagrees with the index kind", path=path
        )
    return HnswFile(index, header, path)


_PARAMS: dict[int, Any] = {}


def search_hnsw(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    ef: int,
    allowed: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Search ``index`` with ``efSearch = max(ef, k)``; ``allowed`` is a packed
    little-endian bitmap of rows that may be returned (None: all). Returns faiss scores
    (inner product or squared L2; computed on float16 copies, so approximate, unless
    :func:`stores_exact_vectors`) and labels (-1 for missing, after the found ones)."""
    ef = max(ef, k)
    if allowed is None:
        # Parameter objects without a selector are read-only during a search, so one per
        # ef value is shared by all threads (building one costs as much as a small search).
        params = _PARAMS.get(ef)
        if params is None:
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef
            if len(_PARAMS) < 4096:
                _PARAMS[ef] = params
        return _search_c(index, queries, k, params)
    params = faiss.SearchParametersHNSW()
    params.efSearch = ef
    selector = faiss.IDSelectorBitmap(index.ntotal, faiss.swig_ptr(allowed))
    params.sel = selector
    scores, labels = _search_c(index, queries, k, params)
    del selector  # kept alive until here: faiss holds only a raw pointer
    return scores, labels


def _search_c(
    index: faiss.Index, queries: np.ndarray, k: int, params: Any
) -> tuple[np.ndarray, np.ndarray]:
    """``index.search`` without the Python wrapper's checks and conversions (a tenth of a
    small search): the caller's queries are already validated (q, d) float32."""
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    n = xq.shape[0]
    scores = np.empty((n, k), dtype=np.float32)
    labels = np.empty((n, k), dtype=np.int64)
    index.search_c(n, faiss.swig_ptr(xq), k, faiss.swig_ptr(scores), faiss.swig_ptr(labels), params)
    return scores, labels


@dataclass(frozen=True, slots=True)
class HnswStats:
    levels: dict[int, int]
    avg_edges: float
    memory_bytes: int


def hnsw_stats(index: faiss.Index) -> HnswStats:
    """Level distribution (level -> nodes), average level-0 out-degree, memory estimate."""
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
