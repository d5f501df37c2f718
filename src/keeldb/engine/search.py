"""Merging the units' top-k into hits: the last step of a search.

Each unit returns its own sorted top k (:class:`~keeldb.engine.unit.UnitResult`); the
merge takes the best k per query across units, then fetches ids and metadata for the
winners only, one decoding pass per unit.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.unit import Unit, UnitResult
from keeldb.index.exact import top_k
from keeldb.types import Hit, SearchStats

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["merge_hits", "run_search"]

_new_tuple = tuple.__new__
_INF = float("inf")


def run_search(
    col: Collection,
    queries: np.ndarray,
    k: int,
    ef: int | None,
    filter: Any,
    exact: bool,
    with_metadata: bool = True,
    with_documents: bool = True,
) -> list[list[Hit]]:
    """Search ``col``'s current units for each row of ``queries`` (validated) and merge
    the top ``k`` (see :meth:`keeldb.Collection.search`); reports :class:`SearchStats`
    to the collection's search callbacks."""
    t0 = time.perf_counter()
    flt = compile_keyed(filter) if filter is not None else None
    ef_used = ef if ef is not None else col.config.ef_search
    state = col.versions.state
    mems: list[Unit] = [u for u in state.memtables if u.rows]  # an empty one has no rows
    segs: list[Unit] = [u for u in state.segments if u.rows]
    units = [*mems, *segs]
    want_stats = bool(col._search_callbacks)

    def one(u: Unit) -> UnitResult:
        return u.search(queries, k, ef_used, flt, want_stats=want_stats, exact=exact)

    # Read newest first (the active memtable, older memtables, then segments): a writer
    # replacing an id kills the old row, then appends the new one to the active memtable,
    # so a reader that read the active memtable's rows before an older unit's dead mask
    # never sees both rows (tests/engine/test_search_duplicates.py). Merged in the units'
    # own order, as before.
    results = [one(u) for u in reversed(mems)][::-1] + [one(u) for u in segs]
    hits = merge_hits(queries.shape[0], k, units, results, with_metadata, with_documents)
    if col._search_callbacks:
        matched = sum(r.matched for r in results)
        plans = {u.name: r.plan for u, r in zip(units, results, strict=True)}
        stats = SearchStats(
            time.perf_counter() - t0,
            len(queries),
            k,
            ef_used,
            len(units),
            plans,
            sum(r.work for r in results),
            sum(r.hops for r in results),
            flt is not None,
            matched if flt is not None else None,
        )
        for cb in list(col._search_callbacks):
            cb(stats)
    return hits


def merge_hits(
    q: int,
    k: int,
    units: Sequence[Unit],
    results: list[UnitResult],
    with_metadata: bool = True,
    with_documents: bool = True,
) -> list[list[Hit]]:
    """The best ``k`` hits per query of ``q`` queries across ``results`` (one per unit of
    ``units``), closest first; each hit with its id, (``with_metadata``) a freshly
    decoded metadata dict of its own and (``with_documents``) its document."""
    if not results:
        return [[] for _ in range(q)]
    if len(results) == 1:
        # One unit: its results are already the sorted top k.
        return _one_unit(
            q, units[0], results[0].distances, results[0].rows, with_metadata, with_documents
        )
    dist = np.concatenate([r.distances for r in results], axis=1)
    rows = np.concatenate([r.rows for r in results], axis=1)
    unit_of = np.concatenate(
        [np.full(r.rows.shape[1], i, dtype=np.int32) for i, r in enumerate(results)]
    )
    dist[rows < 0] = np.inf
    best_d, best_col = top_k(dist, k)
    valid = best_col >= 0
    safe = np.where(valid, best_col, 0)
    best_rows = np.where(valid, np.take_along_axis(rows, safe, axis=1), -1)
    best_unit = unit_of[safe]
    rows_list = cast(list[list[int]], best_rows.tolist())
    dist_list = cast(list[list[float]], best_d.tolist())
    # Several units: gather winners per unit so each decodes its metadata in one
    # pass; every hit gets its own decoded copy (a row found twice yields two dicts).
    slots: dict[int, list[tuple[int, int, int]]] = {}
    units_list = cast(list[list[int]], best_unit.tolist())
    for qi in range(q):
        for j, row in enumerate(rows_list[qi]):
            if row >= 0 and dist_list[qi][j] != _INF:
                slots.setdefault(units_list[qi][j], []).append((qi, j, row))
    found: list[dict[int, Hit]] = [{} for _ in range(q)]
    for ui, entries in slots.items():
        unit_rows = [e[2] for e in entries]
        ids, metas = units[ui].payload(unit_rows, with_metadata)
        docs = _documents(units[ui], unit_rows, with_documents)
        for (qi, j, _), id_, meta, doc in zip(entries, ids, metas, docs, strict=True):
            found[qi][j] = Hit(id_, dist_list[qi][j], meta, doc)
    return [[hits[j] for j in sorted(hits)] for hits in found]


def _documents(unit: Unit, rows: list[int], with_documents: bool) -> list[str | None]:
    """The documents of ``rows`` (all None unless ``with_documents``)."""
    return unit.documents_of(rows) if with_documents else [None] * len(rows)


def _one_unit(
    q: int,
    unit: Unit,
    best_d: np.ndarray,
    best_rows: np.ndarray,
    with_metadata: bool,
    with_documents: bool,
) -> list[list[Hit]]:
    """The hits of a search that had one unit (its results already sorted)."""
    flat_rows = cast(list[int], best_rows.ravel().tolist())
    if flat_rows and min(flat_rows) >= 0:
        # Every slot filled (the common case; a unit marks a missing hit with row -1 and
        # distance inf together): decode all queries' winners in one pass (one JSON
        # parse, a fresh dict per hit) and cut the hits per query.
        ids, metas = unit.payload(flat_rows, with_metadata)
        nones = [None] * len(flat_rows)
        docs = unit.documents_of(flat_rows) if with_documents else nones
        # tuple.__new__ straight from C: half the cost of calling Hit(...)
        dists = cast(list[float], best_d.ravel().tolist())
        flat = list(map(_new_tuple, repeat(Hit), zip(ids, dists, metas, docs, nones, strict=True)))
        width = best_rows.shape[1]
        if q == 1:
            return [flat]
        return [flat[i : i + width] for i in range(0, q * width, width)]
    rows_list = cast(list[list[int]], best_rows.tolist())
    dist_list = cast(list[list[float]], best_d.tolist())
    # Gaps: the same, skipping missing slots.
    spans: list[list[int]] = []
    flat_rows = []
    for qi in range(q):
        row_q, dist_q = rows_list[qi], dist_list[qi]
        keep = [j for j, r in enumerate(row_q) if r >= 0 and dist_q[j] != _INF]
        spans.append(keep)
        flat_rows.extend([row_q[j] for j in keep])
    ids, metas = unit.payload(flat_rows, with_metadata)
    docs = _documents(unit, flat_rows, with_documents)
    out: list[list[Hit]] = []
    pos = 0
    for qi, keep in enumerate(spans):
        dist_q = dist_list[qi]
        out.append(
            [
                Hit(ids[pos + t], dist_q[j], metas[pos + t], docs[pos + t])
                for t, j in enumerate(keep)
            ]
        )
        pos += len(keep)
    return out
