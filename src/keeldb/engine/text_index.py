"""The full-text (BM25) index: the first :class:`~keeldb.engine.derived.DerivedIndex`.

One part per unit, as ``docs/text.md`` ("Engine integration") describes:

* memtable part (:class:`TextMemtablePart`): a :class:`~keeldb.text.MemPostings` whose
  row i is memtable row i; each upsert's documents are analysed and appended under the
  write lock before the rows are published, so a document is searchable when ``upsert``
  returns. Replay goes through the same path.
* segment part (:class:`TextSegmentPart`): a :class:`~keeldb.text.SealedPostings`
  mapped from ``seg-<id>.post``; written at seal (``MemPostings.seal`` with the seal's
  row map) and at merge (``SealedPostings.merge`` with the merge's row map, graph-locality
  order included), before the manifest commit. A segment without documents has no
  ``.post`` file: its part is empty. A missing or damaged ``.post`` (or one built by
  another analyser) is rebuilt from ``.docs`` with a warning.
* deletes: every kill of a unit's rows is passed to its part (``mark_dead``), so
  N, avgdl and df count live documents only, at once.
"""

from __future__ import annotations

import mmap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from keeldb.engine.derived import RowSource, register
from keeldb.errors import InvalidArgumentError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.manifest import CollectionConfig, SegmentEntry
from keeldb.text.analyzer import Analyzer, TokenBatch
from keeldb.text.persist import build_postings, load_postings, save_postings
from keeldb.text.postings import MemPostings, PostingsUnit, SealedPostings
from keeldb.types import TextIndexStats

if TYPE_CHECKING:
    from keeldb.engine.unit import Unit

__all__ = [
    "TextIndex",
    "TextMemtablePart",
    "TextSegmentPart",
    "analyzer_of",
    "analyzer_option",
    "text_stats",
]

NAME = "text"


class TextMemtablePart:
    """The memtable's postings (mutated under the collection's write lock only)."""

    def __init__(self, analyzer: Analyzer) -> None:
        self.postings = MemPostings()
        self.analyzer = analyzer  # the collection's (``$text`` filters analyse with it)

    def append(self, start_row: int, count: int, prepared: Any) -> None:
        """Rows ``start_row .. start_row + count`` were appended; ``prepared`` is their
        token batch (None: no row has a document)."""
        assert self.postings.rows == start_row, "postings rows must equal memtable rows"
        if prepared is None:
            prepared = TokenBatch([], np.zeros(count, dtype=np.int64))
        self.postings.append(prepared)

    def kill(self, rows: np.ndarray) -> None:
        """``rows`` died (fresh, unique)."""
        self.postings.mark_dead(rows)

    @property
    def unit(self) -> PostingsUnit:
        """The postings as a BM25 unit."""
        return self.postings


class TextSegmentPart:
    """A segment's postings (dead rows mirror the segment's tombstones)."""

    def __init__(self, postings: SealedPostings, analyzer: Analyzer) -> None:
        self.postings = postings
        self.analyzer = analyzer  # the collection's (``$text`` filters analyse with it)

    def kill(self, rows: np.ndarray) -> None:
        """``rows`` died (fresh, unique)."""
        self.postings.mark_dead(rows)

    @property
    def unit(self) -> PostingsUnit:
        """The postings as a BM25 unit."""
        return self.postings


def _empty(rows: int) -> SealedPostings:
    return SealedPostings.build([()] * rows)


class TextIndex:
    """The full-text index of one collection, analysing with ``analyzer``."""

    name: str = NAME
    extensions: tuple[str, ...] = ("post",)

    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer

    def prepare(self, documents: Sequence[str | None] | None) -> Any:
        """The terms of a batch's documents as a :class:`~keeldb.text.TokenBatch` (None:
        the batch has none)."""
        if documents is None:
            return None
        return self.analyzer.tokenize_batch([d or "" for d in documents])

    def new_memtable_part(self) -> TextMemtablePart:
        """An empty part for a new memtable."""
        return TextMemtablePart(self.analyzer)

    def write_segment_part(
        self,
        fs: FileSystem,
        directory: str,
        segment_id: int,
        source: RowSource,
        parts: Sequence[tuple[Any, np.ndarray]] | None = None,
    ) -> int:
        """Write ``seg-<id>.post`` for a new segment with documents (none without): from
        the inputs' parts with their row maps (seal, merge), or — ``parts`` None — by
        analysing the segment's documents (rebuild). Returns bytes written."""
        if not source.has_documents:
            return 0
        if parts is None:
            postings = build_postings(source.documents(), self.analyzer)
        else:
            postings = SealedPostings.merge([(p.unit, m) for p, m in parts], source.rows)
        return save_postings(fs, directory, segment_id, postings, self.analyzer, replace=True)

    def load_segment_part(
        self, fs: FileSystem, directory: str, segment_id: int, source: RowSource
    ) -> TextSegmentPart:
        """Map a segment's postings (``CorruptionError`` when missing, damaged or built
        by another analyser); empty for a segment without documents."""
        if not source.has_documents:
            return TextSegmentPart(_empty(source.rows), self.analyzer)
        postings = load_postings(directory, segment_id, source.rows, self.analyzer)
        return TextSegmentPart(postings, self.analyzer)

    def check(self, fs: FileSystem, directory: str, entry: SegmentEntry) -> None:
        """Verify the segment's ``.post`` (``CorruptionError``: rebuildable from ``.docs``,
        which ``keeldb check`` verifies as the segment's data)."""
        if not entry.documents:
            return
        postings = load_postings(directory, entry.segment_id, entry.rows, self.analyzer)
        del postings


def analyzer_option(text: Any) -> Analyzer:
    """The analyser asked for by ``create_collection(text=...)``: None (the default
    analyser: English stop words and stemming), an :class:`Analyzer`, its
    :meth:`Analyzer.config` dict, or a dict of its options such as
    ``{"language": None}``. InvalidArgumentError otherwise."""
    if text is None:
        return Analyzer()
    if isinstance(text, Analyzer):
        return text
    if isinstance(text, dict):
        config = text if "name" in text else {"name": "standard", "options": text}
        try:
            return Analyzer.from_config(config)
        except InvalidArgumentError:
            raise
        except (TypeError, ValueError, AttributeError) as exc:  # e.g. "options": 5
            raise InvalidArgumentError(f"invalid analyser config {text!r}: {exc}") from exc
    raise InvalidArgumentError(
        f"text must be a keeldb.text.Analyzer, a dict of its options, or None; got "
        f"{type(text).__name__}"
    )


def text_stats(units: Sequence[Unit]) -> TextIndexStats | None:
    """The full-text index's figures over ``units`` (None when they carry no text part)."""
    parts = [u.parts[NAME] for u in units if NAME in u.parts]
    if not parts:
        return None
    docs = terms = postings = memory = disk = 0
    for part in parts:
        p = part.postings
        docs += p.live_docs
        postings += p.postings
        memory += p.memory_bytes()
        if isinstance(p, SealedPostings):
            terms += len(p.terms)
            mapped = p.keepalive
            disk += len(mapped) if isinstance(mapped, mmap.mmap) else 0
        else:
            terms += p.terms
    return TextIndexStats(docs, terms, postings, memory, disk)


def analyzer_of(config: CollectionConfig) -> Analyzer:
    """The collection's analyser (its recorded configuration, or the default)."""
    text = getattr(config, "text", None)
    if text is None:
        return Analyzer()
    return Analyzer.from_config(text)


def _factory(config: CollectionConfig) -> TextIndex | None:
    return TextIndex(analyzer_of(config))


register(_factory)
