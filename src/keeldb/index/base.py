"""The interface every vector index of a unit implements, and the row sets it searches.

Kinds today: :class:`keeldb.index.exact.ExactIndex` (brute force with BLAS, the oracle)
and :class:`keeldb.index.hnsw.HnswIndex` (faiss graphs keeping float32, float16 or 8-bit
scalar-quantised copies of the vectors: its ``STORAGE_KINDS``, the collection's
``quantization``). A product-quantised graph would be one more storage kind there, or a
class of its own implementing :class:`VectorIndex`.

This package is the only one that builds faiss indexes: the engine sees numpy arrays,
KeelDB distances (smaller is closer) and row numbers (``engine/footprint.py`` only reads
a loaded graph's buffer sizes).
"""

from __future__ import annotations

from typing import Protocol

import faiss
import numpy as np

__all__ = ["Allowed", "VectorIndex", "faiss_metric"]


def faiss_metric(metric: str) -> int:
    """The faiss metric a KeelDB metric is computed with: squared L2 for ``l2``, inner
    product for ``ip`` and ``cosine`` (vectors are normalised at insert)."""
    return int(faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT)


class Allowed:
    """The rows a search may return: a bool mask over a unit's rows and its count, with
    the packed bitmap (for faiss's selector) and the row numbers (for exact scans) made
    on first use and kept.

    ``dead``: set when the rows are "every live row" (no filter), so an exact scan reads
    every row and drops the dead ones instead of gathering the live ones; the mask is then
    ``~dead``, made on first use.
    """

    __slots__ = ("_bitmap", "_mask", "_rows", "count", "dead")

    def __init__(
        self, mask: np.ndarray | None, count: int, *, dead: np.ndarray | None = None
    ) -> None:
        assert mask is not None or dead is not None
        self._mask = mask
        self.count = count
        self.dead = dead
        self._bitmap: np.ndarray | None = None
        self._rows: np.ndarray | None = None

    @classmethod
    def live(cls, dead: np.ndarray, dead_count: int) -> Allowed:
        """Every row not ``dead`` (``dead_count`` of them are)."""
        return cls(None, len(dead) - dead_count, dead=dead)

    @property
    def mask(self) -> np.ndarray:
        """Bool per row: may be returned."""
        if self._mask is None:
            assert self.dead is not None
            self._mask = ~self.dead
        return self._mask

    def bitmap(self) -> np.ndarray:
        """The mask packed little-endian, one bit per row (faiss ``IDSelectorBitmap``)."""
        if self._bitmap is None:
            self._bitmap = np.packbits(self.mask, bitorder="little")
        return self._bitmap

    def rows(self) -> np.ndarray:
        """The allowed row numbers, ascending."""
        if self._rows is None:
            self._rows = np.flatnonzero(self.mask)
        return self._rows

    @property
    def nbytes(self) -> int:
        """Bytes held beyond the mask (bitmap and row numbers once made)."""
        extra = 0 if self._bitmap is None else self._bitmap.nbytes
        return extra + (0 if self._rows is None else self._rows.nbytes)


class VectorIndex(Protocol):
    """What a unit searches through: top-k rows by KeelDB distance.

    ``exact_scores``: returned distances are exact (else computed on reduced-precision
    copies: the caller re-scores the rows against float32 vectors).
    """

    @property
    def exact_scores(self) -> bool: ...

    def search(
        self, queries: np.ndarray, k: int, ef: int, allowed: Allowed | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of each query (q, d) among ``allowed`` rows (None: every row):
        (distances (q, k'), rows (q, k')), ascending, row -1 (distance inf or
        unspecified) for a missing hit. ``ef`` is the graph search width (ignored by
        exact kinds)."""
        ...

    def memory_bytes(self) -> int:
        """Bytes the index holds in memory (beyond the unit's vectors)."""
        ...
