"""The interface of a searchable unit: the memtable and sealed segments (flat or HNSW).

A collection's state is a tuple of units (:class:`keeldb.engine.state.State`); the read
path (search, count, get, scan) and the write path's tombstones go through this
interface only, so a new kind of unit (or a derived index inside one) plugs in without
the engine asking which kind it holds.

Row numbers are a unit's own; a unit's rows only ever go from live to dead, and only
:meth:`Unit.kill` (under the collection's write lock) makes them so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from keeldb.index.base import Allowed

__all__ = ["Unit", "UnitResult"]


@dataclass(slots=True)
class UnitResult:
    """Top-k of one searched unit: distances (q, k'), rows (q, k') with -1 for none."""

    distances: np.ndarray
    rows: np.ndarray
    plan: str  # how the unit answered (search stats)
    work: int  # distance computations (exact rows, or faiss ndis)
    hops: int
    matched: int = 0  # live rows that passed the filter (all live rows without one)

    @classmethod
    def empty(cls, queries: int) -> UnitResult:
        """No hits for any of ``queries`` queries (nothing may be returned)."""
        return cls(
            np.empty((queries, 0), np.float32), np.empty((queries, 0), np.int64), "empty", 0, 0
        )


class Unit(Protocol):
    """A memtable or a sealed segment, as the read path and tombstones see it."""

    #: the unit's part of each derived index, by index name (``engine/derived.py``)
    parts: dict[str, Any]

    @property
    def name(self) -> str:
        """A stable name for search stats (``mem``, ``seg-<id>``)."""
        ...

    @property
    def rows(self) -> int:
        """Rows a reader may look at now (live or dead)."""
        ...

    @property
    def live_count(self) -> int:
        """Rows not dead."""
        ...

    @property
    def dead_count(self) -> int:
        """Rows dead."""
        ...

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
        """Top-``k`` per query (q, d) among live rows passing ``flt`` (None: all live).
        ``ef``: graph search width; ``exact``: compare every allowed row;
        ``want_stats``: count graph work (faiss's global counters)."""
        ...

    def live_matching(self, flt: Any) -> Allowed:
        """The live rows passing ``flt`` (None: every live row) as a mask over
        :attr:`rows` with its count."""
        ...

    def kill(self, rows: np.ndarray) -> int:
        """Mark ``rows`` dead (negative entries and rows already dead are skipped);
        returns how many died. Caller holds the collection's write lock."""
        ...

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The ids of ``rows``."""
        ...

    def payload(
        self, rows: list[int], with_metadata: bool = True
    ) -> tuple[list[str], Sequence[dict[str, Any] | None]]:
        """Ids and freshly decoded metadata of ``rows`` (None for each row unless
        ``with_metadata``): each a new dict the caller owns."""
        ...

    def documents_of(self, rows: list[int]) -> list[str | None]:
        """The documents of ``rows`` (None where a row has none)."""
        ...

    def metadata_at(self, row: int) -> dict[str, Any]:
        """The metadata of ``row`` (may be shared with the unit: do not change it)."""
        ...

    def record(self, row: int) -> tuple[np.ndarray, dict[str, Any]]:
        """Copies of the vector and metadata of ``row``."""
        ...

    def sorted_ids(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending as an object array, their rows), over :attr:`rows` rows;
        computed once per content and kept."""
        ...

    def locate(self, ids: list[str], hashes: np.ndarray | None) -> dict[int, int]:
        """Live rows of ``ids`` here: {index in ids: row}. ``hashes`` are
        ``id_hashes(ids)`` (computed when None and needed)."""
        ...
