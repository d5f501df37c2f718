"""Full-text search over a collection's units: BM25 with collection-wide statistics.

Each unit (memtable or segment) carries a part of the full-text index
(:mod:`keeldb.engine.text_index`) whose rows are the unit's rows and whose dead rows are
the unit's. A search analyses the query once, asks :func:`keeldb.text.bm25_search` for
the true top k over every unit's postings (N, avgdl and df summed over live rows of all
units; a filter restricts the rows returned through each unit's live-and-matching mask,
never the statistics), then fetches ids, metadata and documents of the winners only.

The search holds the collection's write lock (as ``get`` and ``scan`` do): the
memtable's postings and its published rows then agree, and no row dies half-way.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat
from operator import neg
from typing import TYPE_CHECKING, Any

import numpy as np

from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.text_index import NAME, TextIndex
from keeldb.engine.unit import Unit
from keeldb.engine.validation import check_k
from keeldb.errors import InvalidArgumentError
from keeldb.text.bm25 import TextHits
from keeldb.text.bm25 import search as bm25_search
from keeldb.text.postings import PostingsUnit
from keeldb.types import Hit

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["bm25_top", "scored_hits", "text_index_of", "text_search"]

_new_tuple = tuple.__new__


def text_index_of(col: Collection) -> TextIndex:
    """The collection's full-text index."""
    for index in col.derived:
        if index.name == NAME:
            assert isinstance(index, TextIndex)
            return index
    raise AssertionError("every collection has a full-text index")


def _postings(unit: Unit) -> PostingsUnit:
    part: Any = unit.parts[NAME]
    postings: PostingsUnit = part.unit
    return postings


def text_search(
    col: Collection,
    query: Any,
    k: Any,
    filter: Any,
    with_metadata: Any,
    with_documents: Any,
) -> list[Hit]:
    """:meth:`keeldb.Collection.text_search` (arguments of any shape, validated here):
    the top ``k`` live rows by BM25 for ``query`` among those matching ``filter`` (None:
    all), best first; each hit with ``score`` and ``distance = -score``."""
    if not isinstance(query, str):
        raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
    check_k(k, None, False, with_metadata, with_documents)
    flt = compile_keyed(filter) if filter is not None else None
    terms = text_index_of(col).analyzer(query)
    if not terms:
        return []
    units, found = bm25_top(col, terms, k, flt)
    return scored_hits(units, found.unit, found.row, found.score, with_metadata, with_documents)


def bm25_top(
    col: Collection, terms: list[str], k: int, flt: Any
) -> tuple[tuple[Unit, ...], TextHits]:
    """The units of ``col``'s current state (those with rows) and the true top ``k`` of
    their rows by BM25 for the analysed ``terms``, among live rows matching ``flt``
    (None: all); ``TextHits.unit`` indexes the returned units.

    Runs under the collection's write lock: the memtable's postings and its published
    rows then agree, and no row dies half-way through the scoring. The winners' payloads
    may be read after it (rows only ever go from live to dead)."""
    with col.versions.locked():
        units = tuple(u for u in col._state.units() if u.rows)
        postings = [_postings(u) for u in units]
        allowed: list[np.ndarray | None] | None = None
        if flt is not None:
            allowed = [u.live_matching(flt).mask for u in units]
        return units, bm25_search(postings, terms, k, allowed=allowed)


def scored_hits(
    units: Sequence[Unit],
    unit_of: np.ndarray,
    rows: np.ndarray,
    scores: np.ndarray,
    with_metadata: bool,
    with_documents: bool,
    *,
    distinct: bool = False,
) -> list[Hit]:
    """Hits for (unit, row, score) triples, best first (``score``, and ``distance =
    -score``), decoding per unit in one pass. ``distinct``: a record found under two rows
    (replaced while a search ran) is kept once, at its best."""
    if not len(rows):
        return []
    unit_list = unit_of.tolist()
    row_list = rows.tolist()
    score_list = scores.tolist()
    first = unit_list[0]
    if unit_list.count(first) == len(unit_list):  # the common case: one unit
        ids, metas = units[first].payload(row_list, with_metadata)
        docs = units[first].documents_of(row_list) if with_documents else [None] * len(ids)
        # tuple.__new__ straight from C: half the cost of calling Hit(...)
        dists = list(map(neg, score_list))
        hits = list(
            map(_new_tuple, repeat(Hit), zip(ids, dists, metas, docs, score_list, strict=True))
        )
    else:
        slotted: list[Hit | None] = [None] * len(row_list)
        for ui in dict.fromkeys(unit_list):
            slots = [i for i, u in enumerate(unit_list) if u == ui]
            unit_rows = [row_list[i] for i in slots]
            ids, metas = units[ui].payload(unit_rows, with_metadata)
            docs = units[ui].documents_of(unit_rows) if with_documents else [None] * len(slots)
            for i, id_, meta, doc in zip(slots, ids, metas, docs, strict=True):
                slotted[i] = Hit(id_, -score_list[i], meta, doc, score_list[i])
        hits = [h for h in slotted if h is not None]
    if distinct and len({h.id for h in hits}) < len(hits):
        seen: set[str] = set()
        hits = [h for h in hits if not (h.id in seen or seen.add(h.id))]  # type: ignore[func-returns-value]
    return hits
