"""The memtable: the growing, exactly-searched segment that receives every write.

Rows are append-only: an upsert of an id already here marks the old row dead and appends a
new one, so row numbers never move and readers can search a consistent prefix without a
lock. Arrays grow by doubling (amortised O(batch) per write). All mutation happens under
the collection's write lock; readers capture ``n`` once and read rows below it.

When full, the memtable is *frozen* (no more appends; deletes still mark rows dead) and a
new one takes its place; the background worker seals the frozen one into a segment.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from keeldb.index.exact import exact_search

__all__ = ["Memtable"]


class Memtable:
    """Growing in-memory segment. ``last_seq`` is the newest WAL record applied to it."""

    def __init__(self, dim: int, metric: str, capacity: int = 1024) -> None:
        self.dim = dim
        self.metric = metric
        self.n = 0
        # np.empty/np.zeros of a large array only reserve address space: pages are
        # committed when first written, so sizing the arrays for a full memtable up front
        # costs nothing for a small collection and saves the growth copies for a big one.
        self.vectors = np.empty((capacity, dim), dtype=np.float32)
        self.sq_norms = np.empty(capacity, dtype=np.float32)
        self.dead = np.zeros(capacity, dtype=bool)
        self.hashes = np.empty(capacity, dtype=np.uint64)  # id_hashes of ids, for the seal
        self.ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.row_of: dict[str, int] = {}  # id -> newest row (live unless dead[row])
        self.dead_count = 0
        self.last_seq = 0
        self.frozen = False
        self._columns: Any = None  # filter columns, built on first filtered search
        self._columns_lock = threading.Lock()

    def prefault(self) -> None:
        """Touch every page of the arrays (before the memtable is used; see
        ``Collection._make_spare``)."""
        assert self.n == 0
        self.vectors.fill(0)
        self.sq_norms.fill(0)
        self.dead.fill(False)
        self.hashes.fill(0)

    def __len__(self) -> int:
        return self.n

    @property
    def live_count(self) -> int:
        return self.n - self.dead_count

    def live_row(self, id_: str) -> int | None:
        row = self.row_of.get(id_)
        if row is None or self.dead[row]:
            return None
        return row

    def kill(self, row: int) -> None:
        if not self.dead[row]:
            self.dead[row] = True
            self.dead_count += 1

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = len(self.vectors)
        if need <= cap:
            return
        while cap < need:
            cap *= 2
        for name in ("vectors", "sq_norms", "dead", "hashes"):
            old = getattr(self, name)
            new = (np.zeros if name == "dead" else np.empty)((cap, *old.shape[1:]), dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def append(
        self,
        ids: list[str],
        vectors: np.ndarray,
        metadata: list[dict[str, Any]],
        hashes: np.ndarray,
    ) -> None:
        """Append rows (ids must not be live here: the caller kills old rows first);
        ``hashes`` are ``id_hashes(ids)``."""
        assert not self.frozen, "a frozen memtable takes no appends"
        k = len(ids)
        self._reserve(k)
        start = self.n
        self.vectors[start : start + k] = vectors
        self.hashes[start : start + k] = hashes
        if self.metric == "l2":
            self.sq_norms[start : start + k] = np.einsum("ij,ij->i", vectors, vectors)
        self.ids.extend(ids)
        self.metadata.extend(metadata)
        self.row_of.update(zip(ids, range(start, start + k), strict=True))
        with self._columns_lock:
            if self._columns is not None:
                self._columns.append(metadata)
            self.n = start + k  # publish last: readers only look below n

    def columns(self) -> Any:
        """The filter columns of every row (built lazily, then kept up to date by append).

        Their length is always >= any ``n`` a reader captured before calling this.
        """
        with self._columns_lock:
            if self._columns is None:
                from keeldb.filtering import MetadataColumns

                self._columns = MetadataColumns.build(self.metadata[: self.n])
            return self._columns

    def columns_if_built(self) -> Any:
        """The filter columns if a filtered search built them, else None (for a frozen
        memtable they then cover exactly its ``n`` rows)."""
        with self._columns_lock:
            return self._columns

    def filter_mask(self, flt: Any, n: int) -> np.ndarray:
        """Rows among the first ``n`` whose metadata passes ``flt`` (bool array, len n)."""
        self.columns()
        with self._columns_lock:
            mask: np.ndarray = flt.mask(self._columns)
        return mask[:n]

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the first ``n`` rows; ``allowed`` (bool, len >= n) restricts to
        matching rows, otherwise dead rows are excluded."""
        vectors = self.vectors[:n]
        norms = self.sq_norms[:n] if self.metric == "l2" else None
        if allowed is not None:
            rows = np.flatnonzero(allowed[:n] & ~self.dead[:n])
            return exact_search(vectors, queries, k, self.metric, rows=rows, sq_norms=norms)
        dead = self.dead[:n]
        return exact_search(
            vectors,
            queries,
            k,
            self.metric,
            exclude=dead if self.dead_count else None,
            sq_norms=norms,
        )

    def memory_bytes(self) -> int:
        return int(self.vectors.nbytes + self.sq_norms.nbytes + self.dead.nbytes + 200 * self.n)
