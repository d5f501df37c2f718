"""BM25 scoring over several postings units with collection-wide statistics.

Okapi BM25 with Lucene's IDF (always positive)::

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d, q) = sum over distinct query terms t of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * len(d) / avgdl))

``N`` (live documents), ``avgdl`` (their mean length) and ``df(t)`` (live documents
containing ``t``) are sums over all units, so a document scores the same wherever it is
stored (global IDF, not per segment). Deleted rows are excluded from all three at once.
A query term repeated in the query counts once (as bm25s and Lucene's ``BooleanQuery`` of
distinct terms).

Defaults: ``k1 = 1.2`` (term-frequency saturation) and ``b = 0.75`` (length normalisation)
— Lucene's and bm25s's defaults; ``docs/text.md`` lists the measured alternatives.

Per unit, the compiled kernel (:mod:`keeldb.text.kernels`) scores rows a block at a time
and prunes exactly (MaxScore: light terms are added only to rows that may still reach
the k-th score); without numba, the postings of the query terms are concatenated,
weighted and accumulated with one ``np.bincount`` (float64). On both paths a row's parts
are added in descending term weight (ties in query order), so they give the same scores
bit for bit. The top k among the rows the caller allows (live ∧ filter) is exact, ties
broken by row. Rows containing no query term score 0 and are never returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keeldb.errors import InvalidArgumentError
from keeldb.text.kernels import kernels
from keeldb.text.postings import PostingsUnit, TermPostings, TermSpans

__all__ = ["BM25Params", "CollectionStats", "TextHits", "collection_stats", "search"]


@dataclass(frozen=True, slots=True)
class BM25Params:
    """BM25's two parameters: ``k1`` >= 0 and ``0 <= b <= 1``."""

    k1: float = 1.2
    b: float = 0.75

    def __post_init__(self) -> None:
        if not (self.k1 >= 0 and 0 <= self.b <= 1):
            raise InvalidArgumentError("BM25 needs k1 >= 0 and 0 <= b <= 1")


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """Collection-wide statistics, summed over live rows of every unit."""

    live_docs: int
    total_len: int

    @property
    def avgdl(self) -> float:
        """Mean length of live documents (1.0 for an empty collection)."""
        return self.total_len / self.live_docs if self.live_docs else 1.0


def collection_stats(units: Sequence[PostingsUnit]) -> CollectionStats:
    """N and total length over ``units`` (each maintained per unit in O(1))."""
    return CollectionStats(sum(u.live_docs for u in units), sum(u.live_total_len for u in units))


@dataclass(frozen=True, slots=True)
class TextHits:
    """Top hits, best first: ``unit[i]`` (index into the units searched), ``row[i]`` and
    ``score[i]`` (float64, larger is better; ties broken by unit, then row)."""

    unit: np.ndarray
    row: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.row)


def _live_df(spans: TermSpans, unit: PostingsUnit) -> list[int]:
    """Each term's live document frequency in ``unit``."""
    rows, _, starts, ends = spans
    if unit.dead_count == 0:
        return (ends - starts).tolist()  # type: ignore[no-any-return]
    dead = unit.dead
    return [
        int(e - s) - int(np.count_nonzero(dead[rows[s:e]]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
    ]


def search(
    units: Sequence[PostingsUnit],
    terms: Sequence[str],
    k: int,
    *,
    allowed: Sequence[np.ndarray | None] | None = None,
    params: BM25Params | None = None,
) -> TextHits:
    """The true top ``k`` rows by BM25 for the query ``terms`` (already analysed).

    ``allowed[i]`` is unit i's boolean row mask (len >= the unit's rows; True = may be
    returned, the caller's live ∧ filter), or None for "every live row". Statistics (N,
    avgdl, df) always cover every live row, whatever ``allowed`` says: a filter restricts
    which documents are returned, not how they are scored.
    """
    if k < 1:
        raise InvalidArgumentError("k must be >= 1")
    params = params or BM25Params()
    unique_terms = list(dict.fromkeys(terms))
    if allowed is not None and len(allowed) != len(units):
        raise InvalidArgumentError("allowed must have one entry per unit")
    if not unique_terms or not units:
        return _no_hits()
    per_unit = [u.spans(unique_terms) for u in units]
    stats = collection_stats(units)
    n_docs = stats.live_docs
    live_df = [_live_df(spans, u) for u, spans in zip(units, per_unit, strict=True)]
    df = [sum(col) for col in zip(*live_df, strict=True)]
    # A handful of scalars: Python floats are cheaper than numpy here.
    k1, b, avgdl = params.k1, params.b, stats.avgdl
    weight = [math.log1p((n_docs - d + 0.5) / (d + 0.5)) * (k1 + 1.0) for d in df]
    # Each row's parts are added in descending weight (ties in query order), on every
    # path and unit: the compiled kernel's pruning reads the heaviest terms first.
    by_weight = sorted(range(len(weight)), key=lambda t: -weight[t])
    if by_weight != list(range(len(weight))):
        weight = [weight[t] for t in by_weight]
        per_unit = [(r, f, s[by_weight], e[by_weight]) for r, f, s, e in per_unit]
    found: list[tuple[int, np.ndarray, np.ndarray]] = []
    weights = np.asarray(weight, dtype=np.float64)
    for ui, (unit, spans) in enumerate(zip(units, per_unit, strict=True)):
        if not any(live_df[ui]):  # no live row of this unit holds a query term
            continue
        mask = None if allowed is None else allowed[ui]
        rows, scores = _score_unit(unit, spans, weights, k1, b, avgdl, mask, k)
        if len(rows):
            found.append((ui, rows, scores))
    if not found:
        return _no_hits()
    if len(found) == 1:  # one unit's top k is already sorted (score desc, row asc)
        ui, rows, scores = found[0]
        return TextHits(np.full(len(rows), ui, dtype=np.int64), rows, scores)
    unit_a = np.concatenate([np.full(len(f[1]), f[0], dtype=np.int64) for f in found])
    row_a = np.concatenate([f[1] for f in found])
    score_a = np.concatenate([f[2] for f in found])
    # Each unit's hits are sorted (score desc, row asc) and the units come in order, so a
    # stable sort by score alone breaks ties by unit, then row.
    order = np.argsort(-score_a, kind="stable")[:k]
    return TextHits(unit_a[order], row_a[order], score_a[order])


def _no_hits() -> TextHits:
    return TextHits(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))


def _score_unit(
    unit: PostingsUnit,
    spans: TermSpans,
    weight: np.ndarray,
    k1: float,
    b: float,
    avgdl: float,
    allowed: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (rows i64, scores f64) among allowed live rows of ``unit`` with a
    positive score, best first, ties by row, for the query terms' postings ``spans``
    (at least one of them non-empty).
    ``weight[t]`` is ``idf(t) * (k1 + 1)``. Runs the compiled kernel
    (:mod:`keeldb.text.kernels`) when numba is available, else
    :func:`score_unit_numpy`: the same scores and ranking."""
    rows, tf, starts, ends = spans
    c_len, c_tf = k1 * b / avgdl, k1 * (1.0 - b)
    compiled = kernels()
    if compiled is None:
        used = [
            ((rows[s:e], tf[s:e]), w)
            for s, e, w in zip(starts.tolist(), ends.tolist(), weight.tolist(), strict=True)
            if e > s
        ]
        return score_unit_numpy(unit, used, c_len, c_tf, allowed, k)
    n = unit.rows
    lengths = unit.lengths
    dead = unit.dead if unit.dead_count else _NO_MASK
    if allowed is not None:
        allowed = np.ascontiguousarray(allowed, dtype=bool)
    # The kernel reads these at any row of the postings without bounds checks.
    if (
        len(lengths) < n
        or (len(dead) and len(dead) < n)
        or (allowed is not None and len(allowed) < n)
    ):
        raise InvalidArgumentError("a row mask or the lengths are shorter than the unit's rows")
    out: tuple[np.ndarray, np.ndarray] = compiled.score_top(
        rows,
        tf,
        starts,
        ends,
        weight,
        lengths if lengths.dtype == np.uint32 else lengths.astype(np.uint32),
        dead,
        _NO_MASK if allowed is None else allowed,
        c_len,
        c_tf,
        n,
        k,
        SCORE_BLOCK_ROWS,
        PROBE_COST,
    )
    return out


_NO_MASK = np.zeros(0, dtype=bool)
# Rows the compiled kernel scores at a time: its per-row sums (32 KiB of float64), touched
# rows and the rows' lengths stay in the first cache levels. pypi 100k, interleaved A/B
# against 16,384: 2,048-4,096 took 3-5 % less time in text_search and hybrid_search,
# 512 more (2026-12-02). Tests set it small to run many blocks.
SCORE_BLOCK_ROWS = 4_096
# What one look-up of a row in a term's postings costs, in postings read: the kernel adds
# a pruned term to the rows still in the running by looking each up when they are fewer
# than its postings in the block / PROBE_COST, else by reading its postings. Tests set it
# to 0 (always look up) and to infinity (always read).
PROBE_COST = 16.0


def score_unit_numpy(
    unit: PostingsUnit,
    used: list[tuple[TermPostings, float]],
    c_len: float,
    c_tf: float,
    allowed: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_score_unit` in numpy, over the terms ``used`` (postings, weight) that have
    postings in ``unit``; ``c_len = k1 * b / avgdl`` and ``c_tf = k1 * (1 - b)``."""
    if len(used) == 1:
        rows, tf_u = used[0][0]
        sizes: list[int] | None = None
    else:
        rows = np.concatenate([p[0] for p, _ in used])
        tf_u = np.concatenate([p[1] for p, _ in used])
        sizes = [len(p[0]) for p, _ in used]
    # idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl)), in float64
    denom = unit.lengths[rows] * c_len
    denom += tf_u
    denom += c_tf
    part = tf_u * (np.repeat(weight_of(used), sizes) if sizes is not None else used[0][1])
    part /= denom
    # Rows the caller does not allow score 0: every posting of such a row is zeroed, so
    # its total is 0 and it is never returned (an allowed row's total is > 0).
    keep = ~unit.dead[rows] if unit.dead_count else None
    if allowed is not None:
        keep = allowed[rows] if keep is None else keep & allowed[rows]
    if keep is not None:
        part[~keep] = 0.0
    # Term-at-a-time accumulation into a dense accumulator (one slot per row).
    totals = np.bincount(rows, weights=part, minlength=unit.rows)
    return _top_rows(totals, rows, len(used), k)


def _top_rows(
    totals: np.ndarray, rows: np.ndarray, per_row: int, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` rows by ``totals`` (positive ones only), best first, ties by row.

    ``rows`` are the postings that were accumulated (each row at most ``per_row`` times),
    so only rows among them can have a positive total; the candidates are found from the
    postings, never by a pass sorting every row. A row occurs at most ``per_row`` times,
    so the best ``per_row * k`` postings hold the best k distinct rows; every posting
    scoring at least as much as the m-th best is a candidate, so rows tied at the
    boundary are all considered."""
    at = totals[rows]
    m = min(len(rows), k * per_row)
    threshold = np.partition(at, len(at) - m)[len(at) - m] if m < len(at) else 0.0
    sel = at >= threshold if threshold > 0 else at > 0
    # Distinct candidate rows, ascending (a mark per row is cheaper than sorting them).
    mark = np.zeros(len(totals), dtype=bool)
    mark[rows[sel]] = True
    cand = np.flatnonzero(mark)
    score = totals[cand]
    if len(cand) > k:
        # The k best, taking the lowest rows among those tied with the k-th best.
        kth = np.partition(score, len(score) - k)[len(score) - k]
        above = score > kth
        tied = np.flatnonzero(score == kth)[: k - int(np.count_nonzero(above))]
        above[tied] = True
        cand, score = cand[above], score[above]
    # cand is ascending, so a stable sort by score breaks ties by row.
    order = np.argsort(-score, kind="stable")
    return cand[order], score[order]


def weight_of(used: list[tuple[TermPostings, float]]) -> list[float]:
    """The per-term weights of ``used`` (term postings, weight) pairs."""
    return [w for _, w in used]
