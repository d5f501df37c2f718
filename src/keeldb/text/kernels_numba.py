# mypy: disable-error-code="untyped-decorator,no-any-return"
"""The compiled text-search kernels (numba); :mod:`keeldb.text.kernels` says when they
run and how they match their numpy twins.

Each public kernel has one explicit signature over read-only arrays (writable ones convert
to them), so every unit kind runs the same machine code, compiled once and cached beside
this file (``cache=True``). They release the GIL. The top-k selection both use is a
k-sized min-heap of (score, position) whose root is the worst kept: better means a higher
score, then a lower position (a row, or a first appearance).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types

__all__ = ["fuse_top", "score_top"]

_U32 = types.Array(types.uint32, 1, "C", readonly=True)
_I64 = types.Array(types.int64, 1, "C", readonly=True)
_F64 = types.Array(types.float64, 1, "C", readonly=True)
_BOOL = types.Array(types.bool_, 1, "C", readonly=True)
_RESULT = types.Tuple((types.int64[::1], types.float64[::1]))


# The heap helpers are inlined into each kernel (numba's inline="always"): called, they cost
# about three times the whole selection (pypi, 12,500 rows offered to a heap of 100).
@numba.njit(cache=True, nogil=True, inline="always")
def _worse(s1: float, p1: int, s2: float, p2: int) -> bool:
    """Whether (s1, p1) ranks below (s2, p2)."""
    return s1 < s2 or (s1 == s2 and p1 > p2)


@numba.njit(cache=True, nogil=True, inline="always")
def _offer(hs: np.ndarray, hp: np.ndarray, h: int, s: float, p: int) -> int:
    """Offer (s, p) to the heap ``hs``/``hp`` holding ``h`` entries of at most
    ``len(hs)``; returns its new size."""
    if len(hs) == 0:
        return 0
    if h < len(hs):
        j = h
        while j > 0:
            q = (j - 1) >> 1
            if not _worse(s, p, hs[q], hp[q]):
                break
            hs[j] = hs[q]
            hp[j] = hp[q]
            j = q
        hs[j] = s
        hp[j] = p
        return h + 1
    if not _worse(hs[0], hp[0], s, p):
        return h
    j = 0
    while True:
        c = 2 * j + 1
        if c >= h:
            break
        d = c + 1
        if d < h and _worse(hs[d], hp[d], hs[c], hp[c]):
            c = d
        if not _worse(hs[c], hp[c], s, p):
            break
        hs[j] = hs[c]
        hp[j] = hp[c]
        j = c
    hs[j] = s
    hp[j] = p
    return h


@numba.njit(cache=True, nogil=True)
def _best_first(hs: np.ndarray, hp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The heap's entries (positions, scores) best first."""
    by_pos = np.argsort(hp)  # positions are distinct
    hp = hp[by_pos]
    hs = hs[by_pos]
    order = np.argsort(-hs, kind="mergesort")
    return hp[order], hs[order]


@numba.njit(cache=True, nogil=True, inline="always")
def _next_block(
    rows: np.ndarray, pos: np.ndarray, ends: np.ndarray, nrows: int, width: int, hi: int
) -> int:
    """The first row of the block holding the next row any term has left (``pos[i]``:
    term i's next posting), at or past ``hi``; ``nrows`` when none is left."""
    nxt = nrows
    for i in range(len(pos)):
        if pos[i] < ends[i] and rows[pos[i]] < nxt:
            nxt = rows[pos[i]]
    return max(hi, nxt - nxt % width)


@numba.njit(cache=True, nogil=True, inline="always")
def _seek(rows: np.ndarray, j: int, e: int, target: int) -> int:
    """The first position in ``j..e`` whose row is at least ``target`` (``e`` if none;
    rows ascending): galloping from ``j``, then bisection."""
    if j >= e or rows[j] >= target:
        return j
    lo = j  # rows[lo] < target
    step = 1
    hi = j + 1
    while hi < e and rows[hi] < target:
        lo = hi
        step <<= 1
        hi = lo + step
    hi = min(hi, e)
    lo += 1
    while lo < hi:
        mid = (lo + hi) >> 1
        if rows[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True, inline="always")
def _part(f: float, length: float, w: float, c_len: float, c_tf: float) -> float:
    """One posting's BM25 contribution, in the numpy path's order of operations."""
    denom = length * c_len
    denom += f
    denom += c_tf
    return f * w / denom


# Slack on the pruning bounds: a bound is compared as (partial + bound) * _SLACK, so the
# rounding of a sum added in another order never prunes a row that reaches the threshold.
_SLACK = 1.0 + 1e-9


@numba.njit(cache=True, nogil=True, inline="always")
def _narrow(acc: np.ndarray, touched: np.ndarray, n: int, bound: float, theta: float) -> int:
    """Keep (in ``touched[:n]``, returning their count) the rows whose sum so far plus
    ``bound`` may reach ``theta``; the others' sums are cleared."""
    kept = 0
    for t in range(n):
        b = touched[t]
        if (acc[b] + bound) * _SLACK >= theta:
            touched[kept] = b
            kept += 1
        else:
            acc[b] = 0.0
    return kept


@numba.njit(cache=True, nogil=True, inline="always")
def _add_term(  # noqa: PLR0913
    rows: np.ndarray,
    tf: np.ndarray,
    j0: int,
    j1: int,
    w: float,
    lengths: np.ndarray,
    c_len: float,
    c_tf: float,
    acc: np.ndarray,
    touched: np.ndarray,
    nc: int,
    lo: int,
    probe: float,
) -> None:
    """Add one term's postings ``j0..j1`` (rows of the block from ``lo``) to the
    candidates ``touched[:nc]`` only: by looking each candidate up when that costs less
    than reading the postings (``probe``: one look-up's cost in postings read), else by
    reading them all and keeping the candidates' (non-zero sums)."""
    if nc * probe < j1 - j0:
        for t in range(nc):
            r = touched[t] + lo
            jj = _seek(rows, j0, j1, r)
            if jj < j1 and rows[jj] == r:
                acc[r - lo] += _part(np.float64(tf[jj]), np.float64(lengths[r]), w, c_len, c_tf)
        return
    for jj in range(j0, j1):
        r = np.int64(rows[jj])
        a = acc[r - lo]
        if a != 0.0:
            acc[r - lo] = a + _part(np.float64(tf[jj]), np.float64(lengths[r]), w, c_len, c_tf)


@numba.njit(cache=True, nogil=True, inline="always")
def _scan_terms(  # noqa: PLR0913
    rows: np.ndarray,
    tf: np.ndarray,
    pos: np.ndarray,
    ends: np.ndarray,
    weight: np.ndarray,
    n_terms: int,
    lengths: np.ndarray,
    dead: np.ndarray,
    allowed: np.ndarray,
    c_len: float,
    c_tf: float,
    acc: np.ndarray,
    touched: np.ndarray,
    lo: int,
    hi: int,
) -> int:
    """Add every posting of terms ``0..n_terms-1`` with a row in ``lo..hi-1`` (live and
    allowed) to the block's sums, moving ``pos`` past them; returns how many rows were
    touched (``touched``: offsets from ``lo``, in order of first touch)."""
    check_dead = len(dead) > 0
    check_allowed = len(allowed) > 0
    n_touched = 0
    for i in range(n_terms):
        w = weight[i]
        j = pos[i]
        e = ends[i]
        while j < e:
            r = np.int64(rows[j])
            if r >= hi:
                break
            j += 1
            if check_dead and dead[r]:
                continue
            if check_allowed and not allowed[r]:
                continue
            b = r - lo
            a = acc[b]
            # Every posting writes its row at the end and keeps it only when the row is
            # new (no branch to mispredict): one spare slot for the write after the
            # last new row. Every part is > 0: 0 means not touched yet.
            touched[n_touched] = b
            n_touched += a == 0.0
            acc[b] = a + _part(np.float64(tf[j - 1]), np.float64(lengths[r]), w, c_len, c_tf)
        pos[i] = j
    return n_touched


@numba.njit(
    _RESULT(
        _U32, _U32, _I64, _I64, _F64, _U32, _BOOL, _BOOL,
        types.float64, types.float64, types.int64, types.int64, types.int64, types.float64,
    ),
    cache=True,
    nogil=True,
)  # fmt: skip
def score_top(  # noqa: PLR0913
    rows: np.ndarray,
    tf: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    weight: np.ndarray,
    lengths: np.ndarray,
    dead: np.ndarray,
    allowed: np.ndarray,
    c_len: float,
    c_tf: float,
    nrows: int,
    k: int,
    block: int,
    probe: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` rows (i64) and scores (f64), best first, ties by row, of the postings
    ``rows[starts[i]:ends[i]]`` / ``tf[...]`` of each term i with weight ``weight[i]``
    (idf * (k1 + 1), > 0): score = sum over terms of ``tf * weight / (len * c_len + tf +
    c_tf)``, added in term order. Rows set in ``dead`` or not set in ``allowed`` are
    skipped (an empty array: none dead / all allowed). Every row must be below ``nrows``,
    every array indexed by row at least that long, each term's rows ascending and the
    terms in descending weight (the caller checks the first two and orders the terms;
    every unit keeps its postings so); ``c_len, c_tf >= 0``.

    Rows are scored ``block`` at a time (each term's postings read on from where the
    last block stopped): the per-row sums, the rows' lengths and the touched rows stay
    in a cache-sized window instead of arrays as long as the unit.

    Pruning (MaxScore, exact): a term adds at most its weight to a row. Once k rows are
    kept, the last terms whose weights sum below the k-th score cannot lift a row that
    has none of the others; in each block only the other terms' postings are read, and
    the last terms are added to the rows that may still reach the k-th score, looked
    up one by one when there are few (``probe``: a look-up's cost in postings read)."""
    total = 0
    for i in range(len(starts)):
        total += ends[i] - starts[i]
    width = max(1, min(block, nrows))
    acc = np.zeros(width, np.float64)
    touched = np.empty(width + 1, np.int64)
    m = max(0, min(k, total, nrows))
    hs = np.empty(m, np.float64)
    hp = np.empty(m, np.int64)
    h = 0
    pos = starts.copy()
    n_terms = len(weight)
    tail = np.zeros(n_terms + 1, np.float64)  # tail[i]: the weights of terms i.. summed
    for i in range(n_terms - 1, -1, -1):
        tail[i] = tail[i + 1] + weight[i]
    lo = 0
    while lo < nrows:
        hi = min(lo + width, nrows)
        ess = n_terms  # terms 0..ess-1 are read in full
        theta = 0.0
        if h == m and m > 0:
            theta = hs[0]
            while ess > 0 and tail[ess - 1] * _SLACK < theta:
                ess -= 1
        n_touched = _scan_terms(
            rows, tf, pos, ends, weight, ess, lengths, dead, allowed, c_len, c_tf, acc,
            touched, lo, hi,
        )  # fmt: skip
        if ess < n_terms:
            n_touched = _narrow(acc, touched, n_touched, tail[ess], theta)
            for i in range(ess, n_terms):
                j0 = pos[i]
                pos[i] = _seek(rows, j0, ends[i], hi)
                if n_touched > 0 and pos[i] > j0:
                    _add_term(
                        rows, tf, j0, pos[i], weight[i], lengths, c_len, c_tf, acc, touched,
                        n_touched, lo, probe,
                    )  # fmt: skip
                    n_touched = _narrow(acc, touched, n_touched, tail[i + 1], theta)
        for t in range(n_touched):
            b = touched[t]
            h = _offer(hs, hp, h, acc[b], b + lo)
            acc[b] = 0.0
        lo = _next_block(rows, pos, ends, nrows, width, hi)
    return _best_first(hs[:h], hp[:h])


@numba.njit(cache=True, nogil=True)
def _contributions(  # noqa: PLR0913
    vals: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
    flip: np.ndarray,
    rrf_k: float,
    weighted: bool,
    contrib: np.ndarray,
    list_of: np.ndarray,
) -> None:
    """Each entry's contribution and list (see :func:`fuse_top`)."""
    pos = 0
    for li in range(len(sizes)):
        m = sizes[li]
        w = weights[li]
        if weighted and m > 0:
            sign = -1.0 if flip[li] else 1.0
            lo = sign * vals[pos]
            hi = lo
            for j in range(pos, pos + m):
                v = sign * vals[j]
                lo = min(lo, v)
                hi = max(hi, v)
            span = hi - lo
            for j in range(pos, pos + m):
                contrib[j] = w * ((sign * vals[j] - lo) / span) if span > 0 else w * 1.0
                list_of[j] = li
        else:
            for j in range(m):
                contrib[pos + j] = w / (rrf_k + np.float64(j + 1))
                list_of[pos + j] = li
        pos += m


@numba.njit(
    _RESULT(_I64, _F64, _I64, _F64, _BOOL, types.float64, types.boolean, types.int64),
    cache=True,
    nogil=True,
)
def fuse_top(  # noqa: PLR0913
    keys: np.ndarray,
    vals: np.ndarray,
    sizes: np.ndarray,
    weights: np.ndarray,
    flip: np.ndarray,
    rrf_k: float,
    weighted: bool,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Fusion of lists given flat: list i is the next ``sizes[i]`` entries of ``keys``
    (and of ``vals``, read only when ``weighted``), best first. An entry contributes
    ``weights[i] / (rrf_k + rank)`` (reciprocal rank, ranks from 1) or ``weights[i] * (v
    - min) / (max - min)`` (1 when all are equal) over its list's values, negated first
    where ``flip[i]``; a key's score is the sum of its contributions, counting only its
    first entry in each list. Returns the first position of each of the top ``k`` keys
    (all when k < 0) and their scores, best first, ties by first position."""
    n = len(keys)
    contrib = np.empty(n, np.float64)
    list_of = np.empty(n, np.int64)
    _contributions(vals, sizes, weights, flip, rrf_k, weighted, contrib, list_of)
    by_key = np.argsort(keys, kind="mergesort")  # a key's entries stay in list order
    first = np.empty(n, np.int64)
    fused = np.empty(n, np.float64)
    g = 0
    for j in range(n):
        p = by_key[j]
        if j == 0 or keys[p] != keys[by_key[j - 1]]:
            first[g] = p
            fused[g] = contrib[p]
            g += 1
        elif list_of[p] != list_of[by_key[j - 1]]:
            fused[g - 1] += contrib[p]
    m = g if k < 0 else min(k, g)
    hs = np.empty(m, np.float64)
    hp = np.empty(m, np.int64)
    h = 0
    for i in range(g):
        h = _offer(hs, hp, h, fused[i], first[i])
    return _best_first(hs, hp)
