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
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from keeldb.engine.doc_filter import MemtableDocuments
from keeldb.engine.unit import UnitResult
from keeldb.index.base import Allowed
from keeldb.index.exact import ExactIndex
from keeldb.masks import read_only, with_dead

__all__ = ["Memtable"]


class Memtable:
    """Growing in-memory segment (a :class:`~keeldb.engine.unit.Unit`). ``last_seq`` is
    the newest WAL record applied to it."""

    def __init__(self, dim: int, metric: str, capacity: int = 1024) -> None:
        self.dim = dim
        self.metric = metric
        self.n = 0
        # np.empty/np.zeros of a large array only reserve address space: pages are
        # committed when first written, so sizing the arrays for a full memtable up front
        # costs nothing for a small collection and saves the growth copies for a big one.
        self.vectors = np.empty((capacity, dim), dtype=np.float32)
        self.sq_norms = np.empty(capacity, dtype=np.float32)
        # Copy-on-write (see kill): readers index with the mask they took, lock-free.
        self.dead = read_only(np.zeros(capacity, dtype=bool))
        self.hashes = np.empty(capacity, dtype=np.uint64)  # id_hashes of ids, for the seal
        self.ids: list[str] = []
        self.metadata: list[dict[str, Any]] = []
        self.documents: list[str | None] = []
        self.document_count = 0  # rows with a document
        # derived-index parts by index name (engine/derived.py), told of every append/kill
        self.parts: dict[str, Any] = {}
        self.row_of: dict[str, int] = {}  # id -> newest row (live unless dead[row])
        self.dead_count = 0
        self.last_seq = 0
        self.frozen = False
        self._columns: Any = None  # filter columns, built on first filtered search
        self._columns_lock = threading.Lock()
        self._sorted_ids: tuple[int, np.ndarray, np.ndarray] | None = None

    def prefault(self) -> None:
        """Touch every page of the arrays (before the memtable is used; see
        ``WritePath.make_spare``)."""
        assert self.n == 0
        self.vectors.fill(0)
        self.sq_norms.fill(0)
        dead = np.zeros(len(self.dead), dtype=bool)
        dead.fill(False)  # np.zeros maps untouched pages: write them now
        self.dead = read_only(dead)
        self.hashes.fill(0)

    def __len__(self) -> int:
        return self.n

    @property
    def live_count(self) -> int:
        return self.n - self.dead_count

    @property
    def rows(self) -> int:
        """Rows published so far (``n``)."""
        return self.n

    @property
    def name(self) -> str:
        """``mem`` (search stats)."""
        return "mem"

    def kill(self, rows: np.ndarray) -> int:
        """Mark ``rows`` dead (negative entries and dead rows skipped); returns how many
        died. Caller holds the collection's write lock.

        The mask is copy-on-write: a new read-only mask is published and the count follows
        it, so a mask a reader took never changes (see :func:`keeldb.masks.with_dead`).
        """
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        rows = rows[rows >= 0]
        fresh = np.unique(rows[~self.dead[rows]])
        if len(fresh):
            self.dead = with_dead(self.dead, fresh)
            self.dead_count += len(fresh)
            for part in self.parts.values():
                part.kill(fresh)
        return len(fresh)

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
            setattr(self, name, read_only(new) if name == "dead" else new)

    def append(
        self,
        ids: list[str],
        vectors: np.ndarray,
        metadata: list[dict[str, Any]],
        hashes: np.ndarray,
        documents: list[str | None] | None = None,
        derived: dict[str, Any] | None = None,
    ) -> None:
        """Append rows (ids must not be live here: the caller kills old rows first);
        ``hashes`` are ``id_hashes(ids)``; ``documents`` one per row (None: no row has
        one). ``derived[name]`` is what index ``name``'s :meth:`prepare` computed for
        this batch: each memtable part appends it before the rows are published."""
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
        if documents is None:
            self.documents.extend([None] * k)
        else:
            self.documents.extend(documents)
            self.document_count += k - documents.count(None)
        for name, part in self.parts.items():
            part.append(start, k, None if derived is None else derived.get(name))
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
        """Rows among the first ``n`` whose metadata (and document, for ``$contains`` /
        ``$text``: :mod:`keeldb.engine.doc_filter`) passes ``flt`` (bool array, len n)."""
        self.columns()
        with self._columns_lock:
            cols = self._columns
            docs = MemtableDocuments(self.documents, self.parts)
            mask: np.ndarray = flt.mask(cols, docs)
        return mask[:n]

    def live_matching(self, flt: Any) -> Allowed:
        """Live rows among the first ``n`` passing ``flt`` (None: every live row)."""
        return self._live_matching(flt, self.n)

    def _live_matching(self, flt: Any, n: int) -> Allowed:
        dead = self.dead[:n]
        if flt is None:
            return Allowed.live(dead, int(np.count_nonzero(dead)))
        mask = self.filter_mask(flt, n) & ~dead
        return Allowed(mask, int(np.count_nonzero(mask)))

    def search(
        self,
        queries: np.ndarray,
        k: int,
        ef: int,
        flt: Any,
        *,
        want_stats: bool = False,
        exact: bool = False,
    ) -> UnitResult:
        """Exact top-``k`` over the rows published now, live and passing ``flt`` (None:
        every live row). ``ef``, ``want_stats`` and ``exact`` change nothing here."""
        n = self.n
        norms = self.sq_norms[:n] if self.metric == "l2" else None
        index = ExactIndex(self.vectors[:n], self.metric, norms)
        if flt is None:
            dead_count = self.dead_count
            allowed = Allowed.live(self.dead[:n], dead_count) if dead_count else None
            d, r = index.search(queries, k, ef, allowed)
            return UnitResult(d, r, "exact", n * len(queries), 0, n - dead_count)
        allowed = self._live_matching(flt, n)
        d, r = index.search(queries, k, ef, allowed)
        return UnitResult(d, r, "exact-filtered", n * len(queries), 0, allowed.count)

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows``."""
        ids = self.ids
        return [ids[r] for r in rows.tolist()]

    def payload(
        self, rows: list[int], with_metadata: bool = True
    ) -> tuple[list[str], Sequence[dict[str, Any] | None]]:
        """Ids and fresh copies of the metadata of ``rows`` (None each unless
        ``with_metadata``)."""
        if not rows:
            return [], []
        ids = [self.ids[r] for r in rows]
        if not with_metadata:
            return ids, [None] * len(rows)
        return ids, orjson.loads(orjson.dumps([self.metadata[r] for r in rows]))

    def metadata_at(self, row: int) -> dict[str, Any]:
        """``row``'s metadata (the memtable's own dict: do not change it)."""
        return self.metadata[row]

    def documents_of(self, rows: list[int]) -> list[str | None]:
        """The documents of ``rows`` (None where a row has none)."""
        docs = self.documents
        return [docs[r] for r in rows]

    def record(self, row: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Copies of ``row``'s vector and metadata."""
        return self.vectors[row].copy(), orjson.loads(orjson.dumps(self.metadata[row]))

    def sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids of the first ``n`` rows ascending, their rows); kept until rows are
        appended (ids never change; dead rows are left to the caller's mask)."""
        n = self.n
        cached = self._sorted_ids
        if cached is None or cached[0] != n:
            ids = np.array(self.ids[:n], dtype=object)
            order = np.argsort(ids, kind="stable")
            cached = (n, ids[order], order)
            self._sorted_ids = cached
        return cached[1], cached[2]

    def locate(self, ids: list[str], hashes: np.ndarray | None) -> dict[int, int]:
        """Live rows of ``ids`` here: {index in ids: row} (``hashes`` unused)."""
        get = self.row_of.get
        dead = self.dead
        found: dict[int, int] = {}
        for i, id_ in enumerate(ids):
            row = get(id_)
            if row is not None and not dead[row]:
                found[i] = row
        return found

    def memory_bytes(self) -> int:
        """Estimated memory held (arrays, plus ~200 bytes per row of ids and metadata)."""
        return int(self.vectors.nbytes + self.sq_norms.nbytes + self.dead.nbytes + 200 * self.n)
