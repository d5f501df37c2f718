"""Public value types returned by the KeelDB API (embedded and remote alike).

All are immutable plain data, safe to share between threads. :class:`Hit` is a named
tuple (a search builds thousands of them, and a tuple is the cheapest immutable record
Python can build: about half the cost of a frozen dataclass); it unpacks as
``id, distance, metadata, document, score = hit`` and converts with ``hit._asdict()``.
The others are frozen dataclasses, convertible to JSON with :func:`dataclasses.asdict`
(vectors are numpy arrays and need ``tolist()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "BackupReport",
    "CollectionInfo",
    "CollectionStats",
    "CompactionReport",
    "Hit",
    "InsertStats",
    "Page",
    "PartBytes",
    "Record",
    "SearchStats",
    "SegmentStats",
    "TextIndexStats",
]

Metadata = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Record:
    """A stored record. ``vector`` is a fresh float32 copy (normalised under cosine):
    mutating it changes nothing stored. ``metadata`` is a fresh dict (``{}`` when none).
    ``document`` is the record's text (None when it has none)."""

    id: str
    vector: np.ndarray
    metadata: Metadata
    document: str | None = None


class Hit(NamedTuple):
    """One search result: smaller ``distance`` is closer (cosine: 1 - cos; l2: Euclidean
    distance; ip: -dot; full-text and hybrid search: ``-score``). A named tuple of five
    fields: ``hit.id`` or ``id, distance, metadata, document, score = hit``.

    ``metadata`` is a fresh dict (``{}`` when the record has none), or None when the
    search was made with ``with_metadata=False``. ``document`` is the record's text (None
    when it has none or the search was made with ``with_documents=False``). ``score`` is
    the full-text (BM25) or fused score, larger = better, of ``text_search`` and
    ``hybrid_search`` hits; None for vector search."""

    id: str
    distance: float
    metadata: Metadata | None
    document: str | None = None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """One page of :meth:`Collection.scan`: ``next_cursor`` is None on the last page."""

    records: list[Record]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """What :meth:`Database.list_collections` reports for one collection.

    ``damaged`` is None for a healthy collection. For one that cannot be opened or used
    (a file failed verification), it is the error message, ``count`` is -1 and
    ``index_type`` is ``"damaged"``; the parameters come from its manifest when that is
    readable (else ``dim`` 0 and ``metric`` ``""``). Repair it with ``keeldb repair``.

    ``embedding`` is the name of the collection's embedding function (None without one;
    the name is reported from the manifest even when the function is not installed);
    ``analyzer`` is the full-text analyser's configuration
    (:meth:`keeldb.text.Analyzer.config`).
    ``quantization``: how the collection's HNSW graphs keep their vectors (``none``,
    ``fp16`` or ``sq8``; ``docs/params.md``); ``""`` when unknown (a damaged collection
    whose manifest is unreadable, an older server).
    """

    name: str
    workspace: str
    dim: int
    metric: str
    count: int
    m: int
    ef_construction: int
    ef_search: int
    created_at: float
    index_type: str
    damaged: str | None = None
    quantization: str = ""
    embedding: str | None = None
    analyzer: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class PartBytes:
    """One part's bytes (``SegmentStats.parts``): ``resident_bytes`` held in process
    memory now (owned memory plus the mapped file pages currently in the process's page
    tables; mapped bytes never read are not counted) and ``disk_bytes`` of its files
    (``docs/api.md`` says how each part is measured)."""

    resident_bytes: int
    disk_bytes: int


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """One storage unit of a collection. ``kind`` is ``memtable`` (growing, searched
    exactly), ``flat`` (sealed, searched exactly) or ``hnsw`` (sealed, HNSW graph).

    ``parts``: resident and on-disk bytes per part (``vectors``, ``graph``, ``ids``,
    ``metadata``, ``columns``, ``text``, ``filter_cache``, ``tombstones``; a part the
    unit does not have is absent); ``resident_bytes`` is their resident sum.
    ``memory_bytes`` (an older estimate, kept) counts owned memory and mapped graphs
    whole."""

    segment_id: int
    kind: str
    rows: int
    live: int
    deleted: int
    disk_bytes: int
    memory_bytes: int
    hnsw_levels: dict[int, int] = field(default_factory=dict)
    hnsw_avg_edges: float = 0.0
    parts: dict[str, PartBytes] = field(default_factory=dict)
    resident_bytes: int = 0


@dataclass(frozen=True, slots=True)
class TextIndexStats:
    """The full-text index's share of :class:`CollectionStats` (summed over units).

    ``documents``: live rows with at least one term; ``terms``: vocabulary entries summed
    over units (a term in two units counts twice); ``postings``: (term, row) entries,
    dead rows included until a merge drops them; ``memory_bytes``: estimated heap bytes
    (memtable postings, vocabularies, dead masks); ``disk_bytes``: the segments'
    ``.post`` files, which are memory-mapped (paged in on demand, not on the heap)."""

    documents: int
    terms: int
    postings: int
    memory_bytes: int
    disk_bytes: int


@dataclass(frozen=True, slots=True)
class CollectionStats:
    """:meth:`Collection.stats`: counts, per-segment detail, memory and disk estimates.

    ``parts``: per part name, the sums of the segments' :attr:`SegmentStats.parts`;
    ``resident_bytes``: their resident total (what the collection holds in memory now).
    ``embedding`` and ``analyzer`` as in :class:`CollectionInfo`. ``text``: the full-text
    index's documents, postings, memory and disk."""

    name: str
    workspace: str
    live_count: int
    deleted_count: int
    segments: list[SegmentStats]
    index_type: str
    hnsw_levels: dict[int, int]
    hnsw_avg_edges: float
    memory_bytes: int
    disk_bytes: int
    wal_bytes: int
    parts: dict[str, PartBytes] = field(default_factory=dict)
    resident_bytes: int = 0
    embedding: str | None = None
    analyzer: dict[str, Any] | None = None
    text: TextIndexStats | None = None


@dataclass(frozen=True, slots=True)
class CompactionReport:
    """What :meth:`Collection.compact` did: segments in and out, rows dropped, time."""

    segments_before: int
    segments_after: int
    rows_removed: int
    rows_indexed: int
    duration_s: float


@dataclass(frozen=True, slots=True)
class SearchStats:
    """Passed to ``on_search`` callbacks, once per ``search``/``search_batch`` call.

    ``plans`` maps each searched unit (``mem``, ``seg-<id>``) to the plan used there:
    ``exact``, ``exact-filtered``, ``compact-filtered``, ``hnsw``, ``hnsw-filtered``,
    ``hnsw-probe`` or ``probe+exact-filtered`` (``docs/filtering.md``: the neighbourhood
    check), with ``+exact-fallback`` when an exact scan filled a short walk.
    ``distance_computations`` and ``nodes_visited`` count faiss HNSW work plus exact rows.
    """

    latency_s: float
    queries: int
    k: int
    ef: int
    segments_searched: int
    plans: dict[str, str]
    distance_computations: int
    nodes_visited: int
    filtered: bool
    matched_rows: int | None


@dataclass(frozen=True, slots=True)
class InsertStats:
    """Passed to ``on_insert`` callbacks, once per acknowledged write batch."""

    latency_s: float
    upserted: int
    deleted: int
    replaced: int
    wal_bytes: int


@dataclass
class BackupReport:
    """What :func:`backup` or :func:`restore` wrote: the destination, the collections
    (``workspace/name``), the number of files and bytes, and the time taken."""

    path: str
    collections: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
