"""Per-segment cache of filter results (Lucene's query cache idea).

A segment's rows never change, so a filter's match mask stays valid; only the deleted set
is re-applied when it changes (``dead_version``). Entries are keyed by the filter's
canonical JSON and evicted least-recently-used, within ``MASK_CACHE_ENTRIES`` entries and
``MASK_CACHE_BYTES`` bytes (masks plus compact copies, see :mod:`keeldb.index.compact`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from keeldb.index.base import Allowed
from keeldb.index.compact import CompactIndex

__all__ = [
    "MASK_CACHE_BYTES",
    "MASK_CACHE_ENTRIES",
    "FilterCache",
    "FilterState",
    "KeyedFilter",
    "compile_keyed",
]

MASK_CACHE_ENTRIES = 32
MASK_CACHE_BYTES = 64 << 20


@dataclass(slots=True)
class FilterState:
    """A filter's rows in one segment, given its deleted set at ``dead_version``."""

    match: np.ndarray  # rows passing the filter (read-only)
    dead_version: int
    allowed: Allowed  # match and live
    uses: int = 0  # searches that used this filter on this segment
    compact: CompactIndex | None = None  # float16 copy of exactly the allowed rows

    @property
    def count(self) -> int:
        """Live rows passing the filter."""
        return self.allowed.count

    @property
    def nbytes(self) -> int:
        """Bytes this entry counts against the cache's budget."""
        extra = self.allowed.mask.nbytes if self.allowed.mask is not self.match else 0
        if self.compact is not None:
            extra += self.compact.memory_bytes()
        return int(self.match.nbytes + extra)


class FilterCache:
    """The filter states of one segment. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: OrderedDict[bytes, FilterState] = OrderedDict()
        self._bytes = 0

    def state(
        self,
        flt: Any,
        columns: Callable[[], Any],
        dead: np.ndarray,
        dead_count: int,
        dead_version: int,
    ) -> FilterState:
        """The filter's match mask, live matching rows and their count, cached per
        filter ``key`` (canonical filter JSON; not cached without one) and refreshed
        when ``dead_version`` moved. ``columns()`` gives the segment's filter columns."""
        key: bytes | None = getattr(flt, "key", None)
        state = None
        if key is not None:
            with self._lock:
                state = self._states.get(key)
                if state is not None:
                    self._states.move_to_end(key)
                    if state.dead_version == dead_version:
                        return state
        uses = 0
        if state is not None:
            match = state.match
            uses = state.uses
        else:
            match = flt.mask(columns())
            match.flags.writeable = False
        live_match = match & ~dead if dead_count else match
        allowed = Allowed(live_match, int(np.count_nonzero(live_match)))
        fresh = FilterState(match, dead_version, allowed, uses=uses)
        if key is not None:
            self._put(key, fresh)
        return fresh

    def _put(self, key: bytes, state: FilterState) -> None:
        with self._lock:
            old = self._states.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            self._states[key] = state
            self._bytes += state.nbytes
            while self._states and (
                len(self._states) > MASK_CACHE_ENTRIES or self._bytes > MASK_CACHE_BYTES
            ):
                _, evicted = self._states.popitem(last=False)
                self._bytes -= evicted.nbytes

    def compact(self, state: FilterState, vectors: np.ndarray, metric: str) -> CompactIndex:
        """The compact copy of ``state``'s allowed rows of ``vectors``, made on first use
        (its bytes then count against the budget while ``state`` is cached)."""
        if state.compact is None:
            compact = CompactIndex(vectors, state.allowed.rows(), metric)
            with self._lock:
                cached = any(s is state for s in self._states.values())
                if cached:
                    self._bytes -= state.nbytes
                state.compact = compact
                if cached:
                    self._bytes += state.nbytes
        return state.compact


class KeyedFilter:
    """A compiled filter plus its canonical JSON, the key of segments' filter caches."""

    __slots__ = ("filter", "key")

    def __init__(self, flt: Any, spec: Any) -> None:
        self.filter = flt
        self.key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)

    def mask(self, columns: Any) -> np.ndarray:
        mask: np.ndarray = self.filter.mask(columns)
        return mask

    def matches(self, metadata: Any) -> bool:
        return bool(self.filter.matches(metadata))


def compile_keyed(spec: Any) -> KeyedFilter:
    """Compile the filter ``spec`` (docs/filtering.md; InvalidArgumentError when
    malformed) with its cache key."""
    from keeldb.filtering import compile_filter

    return KeyedFilter(compile_filter(spec), spec)
