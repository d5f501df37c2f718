"""Per-segment cache of filter results (Lucene's query cache idea).

A segment's rows never change, so a filter's match mask stays valid; only the deleted set
is re-applied when it changes (``dead_version``). Entries are keyed by the filter's
canonical JSON and evicted least-recently-used, within ``MASK_CACHE_ENTRIES`` entries and
``MASK_CACHE_BYTES`` bytes (masks plus compact copies, see :mod:`keeldb.index.compact`).
"""

from __future__ import annotations

import math
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
    "COMPILED_CACHE_ENTRIES",
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

    @property
    def nbytes(self) -> int:
        """Bytes of the cached states (masks and compact copies)."""
        return self._bytes

    def state(
        self,
        flt: Any,
        columns: Callable[[], Any],
        dead: np.ndarray,
        dead_count: int,
        dead_version: int,
        docs: Any = None,
    ) -> FilterState:
        """The filter's match mask, live matching rows and their count, cached per
        filter ``key`` (canonical filter JSON; not cached without one) and refreshed
        when ``dead_version`` moved. ``columns()`` gives the segment's filter columns;
        ``docs`` its documents, for document conditions (a segment's documents never
        change, so their masks are cached like metadata masks)."""
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
            match = flt.mask(columns(), docs)
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
    """A compiled filter plus its canonical JSON ``key`` (the key of segments' filter
    caches). Immutable; safe to share between threads."""

    __slots__ = ("filter", "key")

    def __init__(self, flt: Any, spec: Any, key: bytes | None = None) -> None:
        self.filter = flt
        self.key = key if key is not None else orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)

    def mask(self, columns: Any, docs: Any = None) -> np.ndarray:
        """:meth:`keeldb.filtering.Filter.mask`."""
        mask: np.ndarray = self.filter.mask(columns, docs)
        return mask

    def matches(self, metadata: Any, document: str | None = None, analyzer: Any = None) -> bool:
        """:meth:`keeldb.filtering.Filter.matches`."""
        return bool(self.filter.matches(metadata, document, analyzer))


# Compiled filters kept for reuse (issue 16). Validating and compiling a filter costs
# 20-150 us (compile_filter walks the spec, checks every literal, builds the evaluator),
# as much as a whole HNSW query, and a filter in repeated use (a tenant, a facet, a search
# box) would pay it on every call. A compiled filter is immutable and depends on the spec
# alone, so the process keeps the last COMPILED_CACHE_ENTRIES, keyed by canonical JSON.
COMPILED_CACHE_ENTRIES = 256
# Longer specs (canonical JSON bytes) are compiled every time: huge $in lists would
# otherwise pin megabytes here.
COMPILED_CACHE_MAX_KEY_BYTES = 64 << 10
_compiled_lock = threading.Lock()
_compiled: OrderedDict[bytes, KeyedFilter] = OrderedDict()
_SCALARS = (str, bool, type(None))
_I64_MIN, _I64_MAX = -(2**63), 2**63 - 1


def _plain_json(spec: Any) -> bool:
    """Whether ``spec`` is made of exactly dict (str keys), list, str, signed 64-bit int,
    bool, None and finite float: values whose canonical JSON text identifies them (orjson
    writes NaN as null, a tuple as a list, a str subclass as a str, and no integer past 64
    bits: such specs are never cached; the filter's validation judges them)."""
    stack = [spec]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is dict:
            for key, item in v.items():
                if type(key) is not str:
                    return False
                stack.append(item)
        elif t is list:
            stack.extend(v)
        elif t is float:
            if not math.isfinite(v):
                return False
        elif t is int:
            if not _I64_MIN <= v <= _I64_MAX:  # not JSON orjson writes; the filter refuses it
                return False
        elif t not in _SCALARS:
            return False
    return True


def compile_keyed(spec: Any) -> KeyedFilter:
    """Compile the filter ``spec`` (docs/filtering.md; InvalidArgumentError when
    malformed) with its cache key; a spec compiled recently (same canonical JSON, plain
    JSON types) is taken from the process-wide cache of compiled filters."""
    from keeldb.filtering import compile_filter

    if not _plain_json(spec):
        return KeyedFilter(compile_filter(spec), spec)
    key = orjson.dumps(spec, option=orjson.OPT_SORT_KEYS)
    with _compiled_lock:
        hit = _compiled.get(key)
        if hit is not None:
            _compiled.move_to_end(key)
            return hit
    keyed = KeyedFilter(compile_filter(spec), spec, key)
    if len(key) <= COMPILED_CACHE_MAX_KEY_BYTES:
        with _compiled_lock:
            _compiled[key] = keyed
            while len(_compiled) > COMPILED_CACHE_ENTRIES:
                _compiled.popitem(last=False)
    return keyed
