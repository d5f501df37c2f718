"""Paging through a collection in id order (``Collection.scan``).

The cursor is the last id returned, so a page is "the ``limit`` smallest live matching ids
greater than the cursor". Rows move between units when memtables are sealed and segments
merged, but ids do not, so every record that exists for the whole scan is returned exactly
once. Each segment keeps its ids sorted (built lazily, cached: segments are immutable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from keeldb.engine.memtable import Memtable
from keeldb.engine.segment import Segment
from keeldb.engine.state import State
from keeldb.types import Page, Record

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["scan_page"]


def _sorted_ids(seg: Segment) -> tuple[np.ndarray, np.ndarray]:
    cached = getattr(seg, "_sorted_ids", None)
    if cached is None:
        ids = np.array(seg.ids.all_ids(), dtype=object)
        order = np.argsort(ids, kind="stable")
        cached = (ids[order], order)
        seg._sorted_ids = cached  # type: ignore[attr-defined]
    return cached


def scan_page(col: Collection, state: State, flt: Any, limit: int, cursor: str | None) -> Page:
    """One page of live records matching ``flt`` with id > ``cursor`` (write lock held)."""
    candidates: list[tuple[str, Memtable | Segment, int]] = []
    for mem in state.memtables:
        n = mem.n
        ok = ~mem.dead[:n]
        if flt is not None:
            ok &= mem.filter_mask(flt, n)
        for row in np.flatnonzero(ok).tolist():
            id_ = mem.ids[row]
            if cursor is None or id_ > cursor:
                candidates.append((id_, mem, row))
    for seg in state.segments:
        ok = ~seg.dead
        if flt is not None:
            ok &= seg.filter_mask(flt)
        ids, order = _sorted_ids(seg)
        start = 0 if cursor is None else int(np.searchsorted(ids, cursor, side="right"))
        want = limit + 1  # one more than a page tells whether another page exists
        taken = 0
        pos = start
        # Walk the sorted ids in chunks until this segment contributed ``want`` rows.
        while taken < want and pos < len(ids):
            chunk = order[pos : pos + max(4 * want, 1024)]
            good = chunk[ok[chunk]]
            for row in good[: want - taken].tolist():
                candidates.append((seg.ids.id_at(row), seg, row))
            taken += min(len(good), want - taken)
            pos += len(chunk)
    candidates.sort(key=lambda c: c[0])
    page = candidates[:limit]
    records: list[Record] = []
    for id_, unit, row in page:
        if isinstance(unit, Memtable):
            records.append(
                Record(
                    id_, unit.vectors[row].copy(), orjson.loads(orjson.dumps(unit.metadata[row]))
                )
            )
        else:
            records.append(Record(id_, unit.vector_at(row), unit.metadata_at(row)))
    more = len(candidates) > limit
    return Page(records, page[-1][0] if more and page else None)
