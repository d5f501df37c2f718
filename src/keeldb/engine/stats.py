"""A collection's statistics: counts, per-unit detail, HNSW shape, memory and disk."""

from __future__ import annotations

from typing import TYPE_CHECKING

from keeldb.engine.footprint import mapped_resident, memtable_parts, segment_parts, total_parts
from keeldb.engine.state import State
from keeldb.engine.text_index import text_stats
from keeldb.types import CollectionInfo, CollectionStats, SegmentStats

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["collection_info", "collection_stats", "index_type"]


def collection_info(col: Collection) -> CollectionInfo:
    """:meth:`keeldb.Collection.info` of ``col``."""
    c = col.config
    return CollectionInfo(
        c.name,
        c.workspace,
        c.dim,
        c.metric,
        col.count(),
        c.m,
        c.ef_construction,
        c.ef_search,
        c.created_at,
        index_type(col.versions.state),
        quantization=c.graph_quantization,
        embedding=col.embedding_name,
        analyzer=col.analyzer.config(),
    )


def collection_stats(col: Collection) -> CollectionStats:
    """:meth:`keeldb.Collection.stats` of ``col`` (one state snapshot)."""
    state = col.versions.state
    segs: list[SegmentStats] = []
    rss = mapped_resident()
    for i, mem in enumerate(state.memtables):
        parts = memtable_parts(mem)
        segs.append(
            SegmentStats(
                -1 - i,
                "memtable",
                mem.n,
                mem.live_count,
                mem.dead_count,
                0,
                mem.memory_bytes(),
                parts=parts,
                resident_bytes=sum(p.resident_bytes for p in parts.values()),
            )
        )
    levels: dict[int, int] = {}
    edges_total = 0.0
    hnsw_rows = 0
    for seg in state.segments:
        lv, avg, _ = seg.hnsw_summary()
        for level, c in lv.items():
            levels[level] = levels.get(level, 0) + c
        if seg.hnsw is not None:
            edges_total += avg * seg.rows
            hnsw_rows += seg.rows
        parts = segment_parts(seg, rss)
        segs.append(
            SegmentStats(
                seg.segment_id,
                seg.kind,
                seg.rows,
                seg.live_count,
                seg.dead_count,
                seg.disk_bytes(),
                seg.memory_bytes(),
                lv,
                avg,
                parts,
                sum(p.resident_bytes for p in parts.values()),
            )
        )
    wal_bytes = col.versions.wal_bytes()
    totals = total_parts([s.parts for s in segs])
    return CollectionStats(
        col.name,
        col.workspace,
        sum(s.live for s in segs),
        sum(s.deleted for s in segs),
        segs,
        index_type(state),
        levels,
        edges_total / hnsw_rows if hnsw_rows else 0.0,
        sum(s.memory_bytes for s in segs),
        sum(s.disk_bytes for s in segs) + wal_bytes,
        wal_bytes,
        totals,
        sum(p.resident_bytes for p in totals.values()),
        col.embedding_name,
        col.analyzer.config(),
        text_stats(state.units()),
    )


def index_type(state: State) -> str:
    """``"hnsw"`` when any segment has an HNSW graph, else ``"flat"``."""
    return "hnsw" if any(s.kind == "hnsw" for s in state.segments) else "flat"
