"""Full-text search building blocks: analysis, chunking, BM25 postings and scoring, fusion.

- :class:`Analyzer`: text -> terms (lowercase, Unicode words, English stop words and
  Snowball stemming by default); serialisable so a collection can record it.
- :func:`chunk`, :func:`chunk_records`: split long texts for retrieval.
- :class:`MemPostings` (growing, memtable) and :class:`SealedPostings` (immutable,
  per segment): per-unit postings; :func:`bm25_search` scores over several units with
  collection-wide statistics.
- :func:`rrf`, :func:`weighted`: hybrid fusion of ranked lists.

See ``docs/text.md``.
"""

from keeldb.text.analyzer import ENGLISH_STOP_WORDS, Analyzer, TokenBatch
from keeldb.text.bm25 import BM25Params, CollectionStats, TextHits, collection_stats
from keeldb.text.bm25 import search as bm25_search
from keeldb.text.chunking import Chunk, ChunkRecords, chunk, chunk_records, chunk_spans
from keeldb.text.fusion import DEFAULT_DEPTH, DEFAULT_RRF_K, rrf, weighted
from keeldb.text.postings import (
    MemPostings,
    PostingsArrays,
    PostingsUnit,
    SealedPostings,
    match_mask,
)

__all__ = [
    "DEFAULT_DEPTH",
    "DEFAULT_RRF_K",
    "ENGLISH_STOP_WORDS",
    "Analyzer",
    "BM25Params",
    "Chunk",
    "ChunkRecords",
    "CollectionStats",
    "MemPostings",
    "PostingsArrays",
    "PostingsUnit",
    "SealedPostings",
    "TextHits",
    "TokenBatch",
    "bm25_search",
    "chunk",
    "chunk_records",
    "chunk_spans",
    "collection_stats",
    "match_mask",
    "rrf",
    "weighted",
]
