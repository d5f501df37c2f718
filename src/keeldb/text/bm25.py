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

Scoring is term-at-a-time and vectorised: per unit, the postings of the query terms are
concatenated, weighted (float32) and accumulated with one ``np.bincount`` (float64); the
top k among the rows the caller allows (live ∧ filter) is exact, because every row
containing a query term is scored, and ties are broken by row. Rows containing no query
term score 0 and are never returned.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from keeldb.errors import InvalidArgumentError
from keeldb.text.postings import PostingsUnit, TermPostings

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


def _live_df(postings: TermPostings, unit: PostingsUnit) -> int:
    rows = postings[0]
    if not len(rows):
        return 0
    if unit.dead_count == 0:
        return len(rows)
    return len(rows) - int(np.count_nonzero(unit.dead[rows]))


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
    empty = TextHits(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64))
    if not unique_terms or not units:
        return empty
    per_unit = [u.lookup(unique_terms) for u in units]
    stats = collection_stats(units)
    n_docs = stats.live_docs
    df = [0] * len(unique_terms)
    for u, postings in zip(units, per_unit, strict=True):
        df = [d + _live_df(p, u) for d, p in zip(df, postings, strict=True)]
    # A handful of scalars: Python floats are cheaper than numpy here.
    k1, b, avgdl = params.k1, params.b, stats.avgdl
    weight = [math.log1p((n_docs - d + 0.5) / (d + 0.5)) * (k1 + 1.0) for d in df]
    found: list[tuple[int, np.ndarray, np.ndarray]] = []
    for ui, (unit, postings) in enumerate(zip(units, per_unit, strict=True)):
        mask = None if allowed is None else allowed[ui]
        rows, scores = _score_unit(unit, postings, weight, k1, b, avgdl, mask, k)
        if len(rows):
            found.append((ui, rows, scores))
    if not found:
        return empty
    if len(found) == 1:  # one unit's top k is already sorted (score desc, row asc)
        ui, rows, scores = found[0]
        return TextHits(np.full(len(rows), ui, dtype=np.int64), rows, scores)
    unit_a = np.concatenate([np.full(len(f[1]), f[0], dtype=np.int64) for f in found])
    row_a = np.concatenate([f[1] for f in found])
    score_a = np.concatenate([f[2] for f in found])
    order = np.lexsort((row_a, unit_a, -score_a))[:k]
    return TextHits(unit_a[order], row_a[order], score_a[order])


def _score_unit(
    unit: PostingsUnit,
    postings: list[TermPostings],
    weight: list[float],
    k1: float,
    b: float,
    avgdl: float,
    allowed: np.ndarray | None,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The top ``k`` (rows i64, scores f64) among allowed live rows of ``unit`` with a
    positive score, best first, ties by row. ``weight[t]`` is ``idf(t) * (k1 + 1)``."""
    used = [(p, w) for p, w in zip(postings, weight, strict=True) if len(p[0])]
    if not used:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    if len(used) == 1:
        rows, tf_u = used[0][0]
        sizes: list[int] | None = None
    else:
        rows = np.concatenate([p[0] for p, _ in used])
        tf_u = np.concatenate([p[1] for p, _ in used])
        sizes = [len(p[0]) for p, _ in used]
    # idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len / avgdl)), in float64
    denom = unit.lengths[rows] * (k1 * b / avgdl)
    denom += tf_u
    denom += k1 * (1.0 - b)
    part = tf_u * (np.repeat(weight_of(used), sizes) if sizes is not None else used[0][1])
    part /= denom
    # Term-at-a-time accumulation into a dense accumulator; each posting then reads its
    # row's total, so no pass over all n rows is needed to find the candidates.
    totals = np.bincount(rows, weights=part, minlength=unit.rows)[rows]
    keep = ~unit.dead[rows] if unit.dead_count else None
    if allowed is not None:
        keep = allowed[rows] if keep is None else keep & allowed[rows]
    if keep is not None:
        rows, totals = rows[keep], totals[keep]
    # A row occurs at most once per term, so the best len(used) * k postings hold the
    # best k distinct rows; take every posting scoring at least as much as the m-th best
    # so that rows tied at the boundary are all considered.
    m = min(len(rows), k * len(used))
    if m < len(rows):
        threshold = np.partition(totals, len(totals) - m)[len(totals) - m]
        sel = totals >= threshold
        rows, totals = rows[sel], totals[sel]
    # Sorted by (score desc, row asc), a row's postings (equal totals) are adjacent.
    order = np.lexsort((rows, -totals))
    rows, totals = rows[order], totals[order]
    if sizes is not None and len(rows) > 1:
        first = np.empty(len(rows), dtype=bool)
        first[0] = True
        np.not_equal(rows[1:], rows[:-1], out=first[1:])
        rows, totals = rows[first], totals[first]
    return rows[:k].astype(np.int64), totals[:k]


def weight_of(used: list[tuple[TermPostings, float]]) -> list[float]:
    """The per-term weights of ``used`` (term postings, weight) pairs."""
    return [w for _, w in used]
