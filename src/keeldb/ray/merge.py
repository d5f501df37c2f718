"""Merging per-shard answers into one: hits by (distance, id), scan pages by id, and
counts, stats, infos and compaction reports by sum.

Each shard's search answer is its own top k (exact or HNSW), closest first. The global
top k is among the union of the shards' top k, so taking the k smallest (distance, id)
pairs of that union is the global answer; with ``exact=True`` on every shard it is the
exact global top k (ties at equal distance broken by id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from itertools import chain
from operator import attrgetter, itemgetter

import numpy as np

from keeldb.types import CollectionInfo, CollectionStats, CompactionReport, Hit, Page, Record

__all__ = ["merge_hits", "merge_info", "merge_pages", "merge_reports", "merge_stats"]

_ID = itemgetter(0)
_DISTANCE = itemgetter(1)
_RECORD_ID = attrgetter("id")


def merge_hits(parts: Sequence[list[list[Hit]]], k: int) -> list[list[Hit]]:
    """The k closest hits per query over every shard's answer ``parts[s][q]``, ordered by
    (distance, id). Every part must answer the same number of queries."""
    if not parts:
        return []
    if len(parts) == 1:
        return parts[0]
    q = len(parts[0])
    lengths = np.array([[len(hits) for hits in part] for part in parts], dtype=np.int64)
    flat: list[Hit] = list(chain.from_iterable(chain.from_iterable(parts)))
    if not flat:
        return [[] for _ in range(q)]
    query_of = np.repeat(np.tile(np.arange(q), len(parts)), lengths.ravel())
    distances = np.fromiter(map(_DISTANCE, flat), dtype=np.float64, count=len(flat))
    ids = np.array(list(map(_ID, flat)), dtype=np.str_)
    order = np.lexsort((ids, distances, query_of))
    # Rank of each sorted hit within its query: position minus its query's first position.
    per_query = np.bincount(query_of, minlength=q)
    first = np.concatenate(([0], np.cumsum(per_query)[:-1]))
    sorted_query = query_of[order]
    rank = np.arange(len(order)) - first[sorted_query]
    keep = order[rank < k]
    kept_per_query = np.minimum(per_query, k)
    bounds = np.cumsum(kept_per_query)[:-1]
    return [list(map(flat.__getitem__, chunk.tolist())) for chunk in np.split(keep, bounds)]


def merge_pages(pages: Sequence[Page], limit: int) -> Page:
    """One page of ``limit`` records in id order from every shard's page for the same
    (filter, limit, cursor): a k-way merge by id. ``next_cursor`` is the last id
    returned when any shard has more, else None (the embedded scan's contract)."""
    records: list[Record] = list(chain.from_iterable(p.records for p in pages))
    more = any(p.next_cursor is not None for p in pages) or len(records) > limit
    if len(pages) > 1 and records:
        ids = np.array(list(map(_RECORD_ID, records)), dtype=np.str_)
        chosen = np.argsort(ids, kind="stable")[:limit]
        records = list(map(records.__getitem__, chosen.tolist()))
    else:
        records = records[:limit]
    return Page(records, records[-1].id if more and records else None)


def merge_info(infos: Sequence[CollectionInfo]) -> CollectionInfo:
    """One collection's info over its shards: the count summed; ``index_type`` is
    ``hnsw`` when any shard has an HNSW segment. When any shard reports the collection
    damaged, so does the merged info (count -1, ``index_type`` ``damaged``, the shards'
    messages joined)."""
    first = infos[0]
    kinds = {i.index_type for i in infos}
    damaged = [i.damaged for i in infos if i.damaged is not None]
    if damaged:
        return replace(first, count=-1, index_type="damaged", damaged="; ".join(damaged))
    return CollectionInfo(
        first.name,
        first.workspace,
        first.dim,
        first.metric,
        sum(i.count for i in infos),
        first.m,
        first.ef_construction,
        first.ef_search,
        min(i.created_at for i in infos),
        "hnsw" if "hnsw" in kinds else first.index_type,
        quantization=first.quantization,
    )


def merge_stats(stats: Sequence[CollectionStats]) -> CollectionStats:
    """One collection's stats over its shards: counts, bytes and HNSW level sizes summed,
    segments listed shard after shard (segment ids are per shard), the average HNSW
    out-degree weighted by each shard's HNSW rows."""
    levels: dict[int, int] = {}
    edges = 0.0
    hnsw_rows = 0
    for s in stats:
        for level, c in s.hnsw_levels.items():
            levels[level] = levels.get(level, 0) + c
        rows = sum(seg.rows for seg in s.segments if seg.kind == "hnsw")
        edges += s.hnsw_avg_edges * rows
        hnsw_rows += rows
    first = stats[0]
    kinds = {s.index_type for s in stats}
    return CollectionStats(
        first.name,
        first.workspace,
        sum(s.live_count for s in stats),
        sum(s.deleted_count for s in stats),
        list(chain.from_iterable(s.segments for s in stats)),
        "hnsw" if "hnsw" in kinds else first.index_type,
        levels,
        edges / hnsw_rows if hnsw_rows else 0.0,
        sum(s.memory_bytes for s in stats),
        sum(s.disk_bytes for s in stats),
        sum(s.wal_bytes for s in stats),
    )


def merge_reports(reports: Sequence[CompactionReport]) -> CompactionReport:
    """Compaction over every shard (run in parallel): counts summed, the duration is the
    slowest shard's."""
    return CompactionReport(
        sum(r.segments_before for r in reports),
        sum(r.segments_after for r in reports),
        sum(r.rows_removed for r in reports),
        sum(r.rows_indexed for r in reports),
        max(r.duration_s for r in reports),
    )
