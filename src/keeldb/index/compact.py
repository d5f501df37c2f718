"""Compact copies: a float16 flat index over one filter's rows, re-ranked exactly.

A filter in repeated use on a segment may get a compact copy of its allowed rows (see
:mod:`keeldb.engine.planner`): half the bytes of the float32 vectors, contiguous, scanned
with SIMD; the best ``RERANK_FACTOR * k`` candidates (at least ``MIN_CANDIDATES``) are
then re-ranked with exact float32 distances, so returned distances are exact.
"""

from __future__ import annotations

import faiss
import numpy as np

from keeldb.index.base import Allowed, faiss_metric
from keeldb.index.exact import exact_rerank

__all__ = ["MIN_CANDIDATES", "RERANK_FACTOR", "CompactIndex"]

RERANK_FACTOR = 4
MIN_CANDIDATES = 40


class CompactIndex:
    """A float16 copy of ``vectors[rows]`` (``rows`` ascending row numbers of the unit),
    searched with exact re-ranking against ``vectors`` (which must outlive it); a
    :class:`~keeldb.index.base.VectorIndex` whose rows are the unit's."""

    __slots__ = ("_index", "metric", "rows", "vectors")

    exact_scores = True

    def __init__(self, vectors: np.ndarray, rows: np.ndarray, metric: str) -> None:
        self.vectors = vectors
        self.rows = rows
        self.metric = metric
        index = faiss.IndexScalarQuantizer(
            vectors.shape[1], faiss.ScalarQuantizer.QT_fp16, faiss_metric(metric)
        )
        index.add(vectors[rows])
        self._index = index

    def candidates(self, k: int) -> int:
        """How many candidates per query a top-``k`` search re-ranks."""
        return min(len(self.rows), max(RERANK_FACTOR * k, MIN_CANDIDATES))

    def search(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-``k`` among the copy's rows (``ef`` and ``allowed`` are ignored: the
        copy holds exactly the allowed rows)."""
        _, local = self._index.search(queries, self.candidates(k))
        candidates = self.rows[np.maximum(local, 0)]
        return exact_rerank(self.vectors, queries, k, self.metric, candidates)

    def memory_bytes(self) -> int:
        """The float16 copy: two bytes per row and dimension."""
        return int(len(self.rows) * self.vectors.shape[1] * 2)
