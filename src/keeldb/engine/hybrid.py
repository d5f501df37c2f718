"""Hybrid search: dense (vector) and BM25 candidates fused into one ranking.

Both sides run with the same filter: BM25 to ``DEFAULT_DEPTH`` = 100 candidates, the dense
side to ``DEFAULT_DENSE_DEPTH`` = 64 (both measured in ``docs/text.md``), and are fused as
:func:`keeldb.text.rrf` (default, ``rrf_k`` = ``DEFAULT_RRF_K`` = 10) or
:func:`keeldb.text.weighted` (min-max normalised scores, distances flipped) do, in numpy
(:func:`keeldb.text.fusion.fuse_arrays`).
Both sides run on one snapshot of the collection's units (the BM25 side under the
write lock, as :func:`keeldb.engine.text_search.bm25_top`), candidates are fused by
(unit, row), and the winners' ids, metadata and documents are read from their units
directly: no second lookup by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.text_search import bm25_top, scored_hits, text_index_of
from keeldb.engine.unit import Unit
from keeldb.engine.validation import check_k, validate_query
from keeldb.errors import InvalidArgumentError
from keeldb.text.fusion import DEFAULT_DEPTH, DEFAULT_RRF_K, fuse_arrays
from keeldb.types import Hit

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["DEFAULT_DENSE_DEPTH", "FUSIONS", "hybrid_search"]

FUSIONS = ("rrf", "weighted")
# The dense side's candidate depth: the default ``ef_search``, so on a graph the dense side
# walks exactly as plain ``search`` does (a deeper list widens the walk to ``max(ef,
# depth)``: depth 100 cost 1.7-2.4x the plain walk on pypi 100k). BM25 goes deeper
# (DEFAULT_DEPTH): its cost barely grows with depth. SciFact nDCG@10 0.7176 against
# 0.7183 with the dense side at 100 (docs/text.md, "Hybrid defaults").
DEFAULT_DENSE_DEPTH = 64


def check_fusion(fusion: Any, rrf_k: Any, weights: Any) -> list[float] | None:
    """Validate the fusion arguments; returns the weights as floats (None: equal)."""
    if fusion not in FUSIONS:
        raise InvalidArgumentError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
    if rrf_k is not None:
        if fusion != "rrf":
            raise InvalidArgumentError("rrf_k applies to fusion='rrf' only")
        if isinstance(rrf_k, bool) or not isinstance(rrf_k, int | float) or not rrf_k >= 0:
            raise InvalidArgumentError(f"rrf_k must be a number >= 0, got {rrf_k!r}")
    if weights is None:
        return None
    if isinstance(weights, str) or not isinstance(weights, Sequence) or len(weights) != 2:
        raise InvalidArgumentError("weights must be two numbers: (dense, text)")
    out: list[float] = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, int | float) or not w >= 0:
            raise InvalidArgumentError(f"weights must be numbers >= 0, got {weights!r}")
        out.append(float(w))
    return out


def hybrid_search(
    col: Collection,
    query: Any,
    k: Any,
    vector: Any,
    filter: Any,
    fusion: Any,
    rrf_k: Any,
    weights: Any,
    depth: int = DEFAULT_DEPTH,
    dense_depth: int = DEFAULT_DENSE_DEPTH,
) -> list[Hit]:
    """:meth:`keeldb.Collection.hybrid_search` (arguments of any shape, validated here):
    the top ``k`` of the fused dense and BM25 rankings (see the module docstring); each
    hit with ``score`` (the fused score, larger = better) and ``distance = -score``.
    ``depth`` / ``dense_depth``: the BM25 / dense candidates fused (at least ``k`` each).
    """
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
    check_k(k, None)
    weights = check_fusion(fusion, rrf_k, weights)
    if vector is None:
        raise InvalidArgumentError(
            "hybrid_search needs vector= (the dense query) for this collection"
        )
    queries = validate_query(vector, col.dim, col.metric, single=True)
    flt = compile_keyed(filter) if filter is not None else None
    terms = text_index_of(col).analyzer(query)
    width, dense_width = max(depth, k), max(dense_depth, k)
    if terms:
        units, text = bm25_top(col, terms, width, flt)
    else:
        units, text = tuple(u for u in col._state.units() if u.rows), None
    # Both sides on one snapshot of units; candidates are keyed (unit, row): a live id
    # has one row in a snapshot, so this fuses exactly as fusing by id would.
    dense_keys, dense_dist = _dense_top(units, queries, dense_width, col.config.ef_search, flt)
    text_keys, text_scores = np.zeros(0, np.int64), np.zeros(0, np.float64)
    if text is not None:
        text_keys, text_scores = _key(text.unit, text.row), text.score
    fused, scores = fuse_arrays(
        [dense_keys, text_keys],
        [dense_dist, text_scores],
        fusion=fusion,
        rrf_k=DEFAULT_RRF_K if rrf_k is None else rrf_k,
        higher_is_better=[False, True],
        weights=weights,
        depth=max(width, dense_width),
        k=k,
    )
    return scored_hits(units, fused >> 32, fused & 0xFFFFFFFF, scores, True, True, distinct=True)


def _key(unit: np.ndarray, row: np.ndarray) -> np.ndarray:
    """(unit, row) pairs packed in one int64 each (unit in the high 32 bits)."""
    return (np.asarray(unit, dtype=np.int64) << 32) | np.asarray(row, dtype=np.int64)


def _dense_top(
    units: Sequence[Unit], queries: np.ndarray, width: int, ef: int, flt: Any
) -> tuple[np.ndarray, np.ndarray]:
    """The ``width`` nearest live (matching) rows across ``units`` for the one query in
    ``queries``: (keys (:func:`_key` of unit and row), distances), closest first (ties by
    unit, then row)."""
    results = [u.search(queries, width, ef, flt) for u in units]
    if not results:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    dist = np.concatenate([r.distances[0] for r in results])
    rows = np.concatenate([r.rows[0] for r in results])
    unit_of = np.concatenate(
        [np.full(r.rows.shape[1], i, dtype=np.int64) for i, r in enumerate(results)]
    )
    ok = (rows >= 0) & np.isfinite(dist)
    dist, rows, unit_of = dist[ok], rows[ok], unit_of[ok]
    if len(results) > 1 or not bool(np.all(dist[1:] > dist[:-1])):
        # several units, or ties: order by (distance, unit, row); one unit's strictly
        # increasing distances are that order already
        order = np.lexsort((rows, unit_of, dist))
        dist, rows, unit_of = dist[order], rows[order], unit_of[order]
    return _key(unit_of[:width], rows[:width]), dist[:width]
