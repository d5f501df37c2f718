"""Exact (brute-force) k-nearest-neighbour search with BLAS, the oracle for HNSW.

Used for the memtable, flat segments and the planner's filtered exact path. A batch's
scores are computed as one matrix product (numpy -> BLAS, which releases the GIL), the top
k taken with ``argpartition``; a few queries over a subset of rows read them in place
(faiss ``knn_*_by_idx``). :class:`ExactIndex` runs a single query over every row as
faiss's scan on the calling thread instead (the thread policy,
:mod:`keeldb.index.threads`). Distances follow KeelDB's
metrics: cosine ``1 - dot`` (vectors are normalised at insert), ``ip`` ``-dot``, ``l2``
Euclidean distance.
"""

from __future__ import annotations

import faiss
import numpy as np

from keeldb.index.base import Allowed
from keeldb.index.threads import per_query_threads, run_searching, search_threads

__all__ = [
    "ExactIndex",
    "every_row_found",
    "exact_rerank",
    "exact_search",
    "rescore",
    "similarity_to_distance",
    "top_k",
]

# Up to this many queries a subset search reads the chosen rows in place (faiss
# ``knn_*_by_idx``); beyond it, gathering them once and running one matrix product wins.
# Gathering costs a fresh allocation per call, and fresh pages are expensive (measured
# 27x slower than in-place for one query over 1,738 rows on the reference machine).
SUBSET_IN_PLACE_MAX_QUERIES = 32
# At most this many scores (float32, 64 MiB) per block of queries: bigger batches are
# split (the top-k selection over a block needs a few times that in temporaries).
EXACT_BLOCK_SCORES = 1 << 24
# At most this many bytes of chosen rows are gathered (copied) at once.
EXACT_GATHER_BYTES = 64 << 20
# faiss's ``knn_*_by_idx`` go parallel only past 100 queries (``#pragma omp parallel for
# if (nx > 100)`` in faiss/utils/distances.cpp): up to this many, the thread policy's
# set-up (a lock and two OpenMP calls) is skipped, as it would change nothing.
BY_IDX_SERIAL_MAX = 100


def similarity_to_distance(metric: str, sim: np.ndarray) -> np.ndarray:
    """Turn faiss-style scores into KeelDB distances (smaller is closer).

    For ``cosine``/``ip`` ``sim`` is the inner product; for ``l2`` it is the squared
    Euclidean distance.
    """
    if metric == "cosine":
        # float rounding can push 1 - cos of unit vectors just below 0
        out: np.ndarray = np.subtract(1.0, sim, dtype=np.float32)
        np.maximum(out, 0.0, out=out)
        return out
    if metric == "ip":
        out = np.negative(sim, dtype=np.float32)
    else:
        out = np.sqrt(np.maximum(sim, 0.0), dtype=np.float32)
    return out


def every_row_found(labels: np.ndarray) -> bool:
    """Whether ``labels`` (row numbers, -1 for a missing hit) holds no -1. A few labels
    (one query's walk) are checked with Python's ``min`` over a list, a fraction of
    numpy's reduction set-up (issue 16: fixed cost per query)."""
    if labels.size <= 256:
        return min(labels.ravel().tolist(), default=0) >= 0
    return bool(labels.min() >= 0)


def top_k(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``k`` smallest of ``dist`` (q, n) sorted ascending; ``inf`` entries are
    returned as label -1. Returns (distances (q, k'), column indices (q, k')), k' = min(k, n).
    """
    q, n = dist.shape
    kk = min(k, n)
    if kk == 0:
        return np.empty((q, 0), np.float32), np.empty((q, 0), np.int64)
    if q == 1:
        # one query (the common call): 1-d selection, no along-axis index building (a
        # third of this function's time); the same partition and stable sort
        row = dist[0]
        part1 = np.argpartition(row, kk - 1)[:kk] if kk < n else np.arange(n)
        pd1 = row[part1]
        order1 = np.argsort(pd1, kind="stable")
        labels1 = part1[order1].astype(np.int64)
        out1 = pd1[order1]
        labels1[~np.isfinite(out1)] = -1
        return out1.astype(np.float32, copy=False)[None, :], labels1[None, :]
    if kk < n:
        part = np.argpartition(dist, kk - 1, axis=1)[:, :kk]
    else:
        part = np.broadcast_to(np.arange(n), (q, n)).copy()
    pd = np.take_along_axis(dist, part, axis=1)
    order = np.argsort(pd, axis=1, kind="stable")
    labels = np.take_along_axis(part, order, axis=1).astype(np.int64)
    out = np.take_along_axis(pd, order, axis=1)
    labels[~np.isfinite(out)] = -1
    return out.astype(np.float32, copy=False), labels


def exact_search(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    rows: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    sq_norms: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of ``queries`` (q, d) against ``vectors`` (n, d).

    ``rows`` restricts the search to those row numbers (the filtered path: only they are
    read); ``exclude`` (bool, len n) drops rows (tombstones) when ``rows`` is None.
    ``sq_norms`` are the rows' squared norms for ``l2`` (computed when not given).
    Returns (distances (q, k'), row numbers (q, k')) with -1 labels for missing hits.
    """
    if rows is not None and 0 < len(rows) and len(queries) <= SUBSET_IN_PLACE_MAX_QUERIES:
        return _subset_in_place(vectors, queries, k, metric, rows)
    gather = max(1, EXACT_GATHER_BYTES // (4 * vectors.shape[1]))
    if rows is not None and len(rows) > gather:
        # Many rows chosen: gather (copy) them a slice at a time, keeping the best k of
        # each slice, so the copy stays small (every row of a 1M-row segment would
        # otherwise be copied at once: 1.5 GB at 384 dimensions).
        parts = [
            exact_search(vectors, queries, k, metric, rows=rows[s : s + gather], sq_norms=sq_norms)
            for s in range(0, len(rows), gather)
        ]
        return _merge_parts(parts, k)
    if rows is not None:
        base = vectors[rows]
        norms = None if sq_norms is None else sq_norms[rows]
    else:
        base = vectors
        norms = sq_norms
    if base.shape[0] == 0:
        q = queries.shape[0]
        return np.empty((q, 0), np.float32), np.empty((q, 0), np.int64)
    if metric == "l2" and norms is None:
        norms = np.einsum("ij,ij->i", base, base)
    step = max(1, EXACT_BLOCK_SCORES // base.shape[0])
    if queries.shape[0] <= step:
        return _exact_block(base, queries, k, metric, rows, exclude, norms)
    # A big batch over many rows: score it in blocks of queries so the score matrix
    # stays small (1,000 queries x 1M rows would otherwise need 4 GB).
    parts = [
        _exact_block(base, queries[s : s + step], k, metric, rows, exclude, norms)
        for s in range(0, queries.shape[0], step)
    ]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class ExactIndex:
    """Brute-force :class:`~keeldb.index.base.VectorIndex` over ``vectors`` (n, d): row i is
    ``vectors[i]``. Nothing is built or stored: it views the caller's arrays (the
    memtable's, a segment's mapped ``.vec``), which must outlive it. ``sq_norms`` are the
    rows' squared norms under ``l2`` (computed per search when None)."""

    __slots__ = ("metric", "sq_norms", "vectors")

    exact_scores = True

    def __init__(
        self, vectors: np.ndarray, metric: str, sq_norms: np.ndarray | None = None
    ) -> None:
        self.vectors = vectors
        self.metric = metric
        self.sq_norms = sq_norms

    def search(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among ``allowed`` rows: every row read, dead ones dropped, when
        ``allowed.dead`` is set; else only the allowed rows read (``ef`` is ignored). One
        query reading every row is :func:`_scan_one` (on the calling thread) unless the
        policy gives a query more threads."""
        every_row = allowed is None or allowed.dead is not None
        if every_row and len(queries) == 1 and len(self.vectors) and per_query_threads() == 1:
            keep = None if allowed is None else allowed.bitmap()
            return _scan_one(self.vectors, queries, k, self.metric, keep, self.sq_norms)
        if allowed is None:
            return exact_search(self.vectors, queries, k, self.metric, sq_norms=self.sq_norms)
        if allowed.dead is not None:
            return exact_search(
                self.vectors, queries, k, self.metric, exclude=allowed.dead, sq_norms=self.sq_norms
            )
        return exact_search(
            self.vectors, queries, k, self.metric, rows=allowed.rows(), sq_norms=self.sq_norms
        )

    def search_rows(
        self, queries: np.ndarray, k: int, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among the row numbers ``rows`` (only they are read)."""
        return exact_search(
            self.vectors, queries, k, self.metric, rows=rows, sq_norms=self.sq_norms
        )

    def rescore(self, queries: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:func:`rescore` against these vectors."""
        return rescore(self.vectors, queries, self.metric, labels)

    def rerank(
        self, queries: np.ndarray, k: int, candidates: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:func:`exact_rerank` against these vectors."""
        return exact_rerank(self.vectors, queries, k, self.metric, candidates)

    def memory_bytes(self) -> int:
        """Nothing beyond the viewed vectors."""
        return 0


def _merge_parts(
    parts: list[tuple[np.ndarray, np.ndarray]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` per query of several (distances, row numbers) results."""
    dist = np.concatenate([p[0] for p in parts], axis=1)
    labels = np.concatenate([p[1] for p in parts], axis=1)
    dist[labels < 0] = np.inf
    best, cols = top_k(dist, k)
    rows = np.take_along_axis(labels, np.maximum(cols, 0), axis=1)
    return best, np.where(cols >= 0, rows, -1)


def _exact_block(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    rows: np.ndarray | None,
    exclude: np.ndarray | None,
    norms: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_search` of ``queries`` against ``base`` (already ``vectors[rows]``)."""
    sim = queries @ base.T
    if metric == "l2":
        assert norms is not None
        qn = np.einsum("ij,ij->i", queries, queries)
        sim = np.maximum(qn[:, None] + norms[None, :] - 2.0 * sim, 0.0)
        dist = np.sqrt(sim, out=sim)
    elif metric == "cosine":
        dist = np.clip(np.subtract(1.0, sim, out=sim), 0.0, 2.0, out=sim)
    else:
        dist = np.negative(sim, out=sim)
    if exclude is not None and rows is None:
        dist[:, exclude] = np.inf
    d, labels = top_k(dist, k)
    if rows is not None:
        labels = np.where(labels >= 0, rows[np.maximum(labels, 0)], -1)
    return d, labels


def _scan_one(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    keep: np.ndarray | None,
    sq_norms: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`exact_search` of one query over every row (only those set in ``keep``, an
    :meth:`Allowed.bitmap`, when given) on the calling thread: faiss's scan with its own
    top-k heap (thread policy: one query never fans out). numpy's matrix product would
    run on every OpenBLAS thread, and those spin against other processes: flat 5,000 x
    384 collection, two CPU-burning processes, 0.17-0.18x of the idle rate on two
    OpenBLAS threads against 0.48-0.79x on one faiss thread (2026-12-02)."""
    n, d = vectors.shape
    kk = min(k, n)
    base = np.ascontiguousarray(vectors, dtype=np.float32)
    query = np.ascontiguousarray(queries, dtype=np.float32)
    dist = np.empty((1, kk), dtype=np.float32)
    labels = np.empty((1, kk), dtype=np.int64)
    selector = None if keep is None else faiss.IDSelectorBitmap(n, faiss.swig_ptr(keep))
    args = [faiss.swig_ptr(query), faiss.swig_ptr(base), d, 1, n, kk]
    args += [faiss.swig_ptr(dist), faiss.swig_ptr(labels)]
    with search_threads(1):
        if metric == "l2":
            norms = None if sq_norms is None else np.ascontiguousarray(sq_norms[:n], np.float32)
            faiss.knn_L2sqr(*args, None if norms is None else faiss.swig_ptr(norms), selector)
        else:
            faiss.knn_inner_product(*args, selector)
    out = similarity_to_distance(metric, dist)
    out[labels < 0] = np.inf
    return out, labels


def _subset_in_place(
    vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over ``vectors[rows]`` (rows shared by all queries), in place."""
    return _by_index(vectors, queries, k, metric, np.ascontiguousarray(rows, dtype=np.int64), 0)


def exact_rerank(
    vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, candidates: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of each query among its own candidate rows (``candidates``: (q, c),
    row numbers, no -1), reading those rows in place."""
    subset = np.ascontiguousarray(candidates, dtype=np.int64)
    return _by_index(vectors, queries, k, metric, subset, subset.shape[1])


def rescore(
    vectors: np.ndarray, queries: np.ndarray, metric: str, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Exact distances from each query to its own rows ``labels`` (q, c; -1 for none),
    each query's rows re-sorted by them (ascending; -1 rows last with distance inf).
    Returns (distances (q, c), row numbers (q, c)). The rows are read in place (no copy
    of them), so the memory is that of the (q, c) results."""
    nq, width = labels.shape
    if labels.size == 0:
        return np.empty((nq, width), np.float32), labels.astype(np.int64)
    ids = np.ascontiguousarray(labels, dtype=np.int64)
    if every_row_found(ids):
        # Every query found c rows (the common case): faiss scores and sorts them.
        return exact_rerank(vectors, queries, width, metric, ids)
    # Some queries found fewer (heavy filtering or deletes): faiss scores the found rows
    # in place (``fvec_*_by_idx`` skips negative ids), then each row is sorted here.
    assert vectors.dtype == np.float32 and vectors.flags.c_contiguous
    assert int(ids.max()) < len(vectors)  # faiss takes raw pointers
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    scores = np.empty((nq, width), dtype=np.float32)
    fn = faiss.fvec_L2sqr_by_idx if metric == "l2" else faiss.fvec_inner_products_by_idx
    fn(
        faiss.swig_ptr(scores),
        faiss.swig_ptr(xq),
        faiss.swig_ptr(vectors),
        faiss.swig_ptr(ids),
        xq.shape[1],
        nq,
        width,
    )
    dist = similarity_to_distance(metric, scores)
    missing = ids < 0
    dist[missing] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _by_index(
    vectors: np.ndarray, queries: np.ndarray, k: int, metric: str, subset: np.ndarray, stride: int
) -> tuple[np.ndarray, np.ndarray]:
    """faiss ``knn_*_by_idx``: top-k of each query over the rows ``subset`` names, read in
    place. ``stride`` 0: one subset (1-d) for all queries; else each query's own row of a
    (q, stride) subset. faiss takes raw pointers, so every row number is checked first."""
    assert vectors.dtype == np.float32 and vectors.flags.c_contiguous
    if subset.size <= 256:
        # a few rows (re-scoring a walk's hits): Python's min/max over a list are a
        # fraction of numpy's reduction set-up (issue 16: fixed cost per query)
        flat = subset.ravel().tolist()
        assert not flat or (max(flat) < len(vectors) and min(flat) >= 0)
    else:
        assert int(subset.max()) < len(vectors) and int(subset.min()) >= 0
    xq = np.ascontiguousarray(queries, dtype=np.float32)
    nq, dim = xq.shape
    width = subset.shape[-1]
    kk = min(k, width)
    vals = np.empty((nq, kk), dtype=np.float32)
    ids = np.empty((nq, kk), dtype=np.int64)
    fn = faiss.knn_L2sqr_by_idx if metric == "l2" else faiss.knn_inner_products_by_idx
    args = (
        faiss.swig_ptr(xq),
        faiss.swig_ptr(vectors),
        faiss.swig_ptr(subset),
        dim,
        nq,
        len(vectors),
        width,
        kk,
        faiss.swig_ptr(vals),
        faiss.swig_ptr(ids),
        stride,
    )
    run_searching(fn, args, nq, BY_IDX_SERIAL_MAX)
    dist = similarity_to_distance(metric, vals)
    dist[ids < 0] = np.inf
    return dist, ids
