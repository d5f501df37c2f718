"""Reads of records by id: paging through a collection in id order
(``Collection.scan``), records of given ids (``Collection.get``) and the ids matching a
filter (delete by filter).

The cursor is the last id returned, so a page is "the ``limit`` smallest live matching ids
greater than the cursor". Rows move between units when memtables are sealed and segments
merged, but ids do not, so every record that exists for the whole scan is returned exactly
once. Each unit keeps its ids sorted (:meth:`~keeldb.engine.unit.Unit.sorted_ids`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.state import State, locate
from keeldb.engine.unit import Unit
from keeldb.errors import InvalidArgumentError
from keeldb.types import Page, Record

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["matching_ids", "records_by_id", "scan_page"]


def records_by_id(col: Collection, ids: list[str]) -> list[Record | None]:
    """:meth:`keeldb.Collection.get` of validated ``ids``: each id's live record (copies
    of its vector and metadata, and its document) or None, aligned with ``ids``."""
    with col.versions.locked():
        out: list[Record | None] = []
        for id_, loc in zip(ids, locate(col.versions.state, ids), strict=True):
            if loc is None:
                out.append(None)
                continue
            unit, row = loc
            vec, meta = unit.record(row)
            out.append(Record(id_, vec, meta, unit.documents_of([row])[0]))
    return out


def matching_ids(state: State, flt: Any) -> list[str]:
    """Ids of the live records of ``state`` matching the compiled filter ``flt``."""
    ids: list[str] = []
    for unit in state.units():
        ids.extend(unit.ids_of(unit.live_matching(flt).rows()))
    return ids


def scan_page(col: Collection, filter: Any, limit: Any, cursor: Any) -> Page:
    """:meth:`keeldb.Collection.scan` (arguments of any shape, validated here): one page
    of live records matching ``filter`` with id > ``cursor``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
        raise InvalidArgumentError(f"limit must be an integer in [1, 100000], got {limit!r}")
    if cursor is not None and not isinstance(cursor, str):
        raise InvalidArgumentError("cursor must be a string returned by a previous scan")
    flt = compile_keyed(filter) if filter is not None else None
    with col.versions.locked():
        return _page(col, col.versions.state, flt, limit, cursor)


def _page(col: Collection, state: State, flt: Any, limit: int, cursor: str | None) -> Page:
    """One page of live records matching ``flt`` with id > ``cursor`` (write lock held)."""
    candidates: list[tuple[str, Unit, int]] = []
    units: tuple[Unit, ...] = (*state.memtables, *state.segments)
    for unit in units:
        candidates.extend(_unit_candidates(unit, flt, limit + 1, cursor))
    candidates.sort(key=lambda c: c[0])
    page = candidates[:limit]
    records: list[Record] = []
    for id_, unit, row in page:
        vector, metadata = unit.record(row)
        records.append(Record(id_, vector, metadata, unit.documents_of([row])[0]))
    more = len(candidates) > limit
    return Page(records, page[-1][0] if more and page else None)


def _unit_candidates(
    unit: Unit, flt: Any, want: int, cursor: str | None
) -> list[tuple[str, Unit, int]]:
    """Up to ``want`` (id, unit, row) of ``unit``'s live rows matching ``flt`` with the
    smallest ids greater than ``cursor``, ascending (``want`` is one more than a page:
    it tells whether another page exists)."""
    ok = unit.live_matching(flt).mask
    ids, order = unit.sorted_ids()
    out: list[tuple[str, Unit, int]] = []
    pos = 0 if cursor is None else int(np.searchsorted(ids, cursor, side="right"))
    # Walk the sorted ids in chunks until this unit contributed ``want`` rows.
    while len(out) < want and pos < len(ids):
        end = pos + max(4 * want, 1024)
        chunk = order[pos:end]
        good = np.flatnonzero(ok[chunk])[: want - len(out)]
        rows = chunk[good].tolist()
        out.extend(zip(ids[pos:end][good].tolist(), [unit] * len(rows), rows, strict=True))
        pos = end
    return out
