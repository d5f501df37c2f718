"""The derived-index seam: how a per-collection index computed from durable data plugs in.

A *derived index* (the full-text index is the first; sparse vectors could be next) needs
no durability of its own (``../shared/ARCHITECTURE.md``, "Derived indexes"): everything it
indexes already travels in WAL records and segment files. It keeps one *part* per unit,
as Lucene does:

* **memtable part** — created with each memtable (:meth:`DerivedIndex.new_memtable_part`)
  and told about every row appended to it, under the write lock, before the rows are
  published to readers (:meth:`MemtablePart.append`, with what
  :meth:`DerivedIndex.prepare` computed from the batch's documents): a fresh row is
  searchable once the write is acknowledged. Replay after a crash goes through the same
  path, so the part is rebuilt from the WAL.
* **segment part** — written beside a new segment's files by a seal or a merge, before
  the manifest that names the segment is committed (:meth:`DerivedIndex.write_segment_part`,
  given the input units' parts with the row map into the new segment's final row order),
  so the commit covers it; loaded when the segment is opened
  (:meth:`DerivedIndex.load_segment_part`). A missing or damaged file
  (``CorruptionError``) is rebuilt from the segment's own stored data with a warning
  (:func:`segment_part`), never answered from.
* **deletes** — every part has ``kill(rows)``, called by its unit wherever the unit
  marks rows dead (under the write lock; at load with the segment's tombstones), so
  collection-wide statistics (sums over units) count live rows only.
* **checks** — ``keeldb check`` calls :meth:`DerivedIndex.check` for every segment file
  the index owns; damage there is reported as rebuildable, like an HNSW graph.

Adding a derived index touches one module (its implementation of :class:`DerivedIndex`)
plus registration (:func:`register`, called when its module is imported; built-in kinds
are imported by :mod:`keeldb.engine.derived_kinds`, whose ``indexes_for`` the engine
uses) and its file extensions in ``storage/format.py``.
The full-text index (``engine/text_index.py``) is the first.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from keeldb.errors import CorruptionError

if TYPE_CHECKING:
    from keeldb.storage.fileio import FileSystem
    from keeldb.storage.manifest import CollectionConfig, SegmentEntry

log = logging.getLogger("keeldb")

__all__ = [
    "DerivedIndex",
    "MemtablePart",
    "Part",
    "RowSource",
    "indexes_for",
    "register",
    "segment_part",
]


class RowSource(Protocol):
    """The rows a segment part is built from, in the segment's row order."""

    @property
    def rows(self) -> int: ...

    @property
    def has_documents(self) -> bool: ...

    def documents(self) -> list[str | None]: ...


class Part(Protocol):
    """A derived index's part for one unit."""

    def kill(self, rows: np.ndarray) -> None:
        """``rows`` (unique, newly dead) died (write lock held)."""


class MemtablePart(Part, Protocol):
    """A derived index's part for one memtable (mutated under the write lock only)."""

    def append(self, start_row: int, count: int, prepared: Any) -> None:
        """Rows ``start_row .. start_row + count`` were appended to the memtable (before
        they are published to readers); ``prepared`` is :meth:`DerivedIndex.prepare`'s
        result for their documents."""


class DerivedIndex(Protocol):
    """One kind of derived index, for one collection."""

    #: short name, unique per collection (``"text"``)
    name: str
    #: segment file extensions it owns (each listed in ``storage/format.py``)
    extensions: tuple[str, ...]

    def prepare(self, documents: Sequence[str | None] | None) -> Any:
        """What the memtable part needs from a batch's documents (one per row; None: the
        batch has none), e.g. token lists."""

    def new_memtable_part(self) -> MemtablePart:
        """An empty part for a new memtable."""

    def write_segment_part(
        self,
        fs: FileSystem,
        directory: str,
        segment_id: int,
        source: RowSource,
        parts: Sequence[tuple[Any, np.ndarray]] | None = None,
    ) -> int:
        """Write the part of a new segment (durable files under their final names, not
        yet named by any manifest); returns the bytes written. ``parts``: the input
        units' parts, each with its row map (``row_map[r]`` = the new segment's row of
        input row ``r``, -1 = dropped); None rebuilds from ``source`` alone."""

    def load_segment_part(
        self, fs: FileSystem, directory: str, segment_id: int, source: RowSource
    ) -> Part:
        """Load a segment's part; ``CorruptionError`` when a file is missing or damaged."""

    def check(self, fs: FileSystem, directory: str, entry: SegmentEntry) -> None:
        """Verify a segment's files (``keeldb check``); raise ``KeelError`` on damage."""


_FACTORIES: list[Callable[[CollectionConfig], DerivedIndex | None]] = []
_FACTORIES_LOCK = threading.Lock()


def register(factory: Callable[[CollectionConfig], DerivedIndex | None]) -> None:
    """Register a derived-index kind: ``factory(config)`` returns the collection's index
    of that kind, or None when the collection does not use it."""
    with _FACTORIES_LOCK:
        if factory not in _FACTORIES:
            _FACTORIES.append(factory)


def indexes_for(config: CollectionConfig) -> tuple[DerivedIndex, ...]:
    """The derived indexes a collection with ``config`` keeps, in registration order."""
    with _FACTORIES_LOCK:
        factories = list(_FACTORIES)
    out = [index for f in factories if (index := f(config)) is not None]
    names = [i.name for i in out]
    if len(set(names)) != len(names):
        raise AssertionError(f"derived index names collide: {names}")
    return tuple(out)


def segment_part(
    index: DerivedIndex,
    fs: FileSystem,
    directory: str,
    segment_id: int,
    source: RowSource,
) -> Part:
    """A segment's part of ``index``: loaded, or — when its file is missing or damaged —
    rebuilt from the segment's stored rows (``source``) with a warning (logged and a
    ``RuntimeWarning``), then loaded."""
    try:
        return index.load_segment_part(fs, directory, segment_id, source)
    except CorruptionError as exc:
        message = (
            f"segment {segment_id}: {index.name} index: {exc}; rebuilding it from the "
            "segment's data"
        )
    log.warning("%s", message)
    warnings.warn(message, RuntimeWarning, stacklevel=2)
    index.write_segment_part(fs, directory, segment_id, source)
    fs.sync_dir(directory)
    return index.load_segment_part(fs, directory, segment_id, source)
