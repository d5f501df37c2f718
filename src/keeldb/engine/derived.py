"""The derived-index seam: how a per-collection index computed from durable data plugs in.

A *derived index* (the full-text index is the first; sparse vectors could be next) needs
no durability of its own (``../shared/ARCHITECTURE.md``, "Derived indexes"): everything it
indexes already travels in WAL records and segment files. It keeps one *part* per unit,
as Lucene does:

* **memtable part** — created with each memtable (:meth:`DerivedIndex.new_memtable_part`)
  and told about every row appended to it, under the write lock, before the write is
  acknowledged (:meth:`MemtablePart.append`): a fresh row is searchable at once. Replay
  after a crash goes through the same path, so the part is rebuilt from the WAL.
* **segment part** — written beside a new segment's files by a seal or a merge, before
  the manifest that names the segment is committed (:meth:`DerivedIndex.write_segment_part`),
  so the commit covers it; loaded on first use (:meth:`DerivedIndex.load_segment_part`).
  A missing or damaged file (``CorruptionError``) is rebuilt from the segment's own
  stored data with a warning (:func:`segment_part`), never answered from.
* **deletes** need no hook: a unit's tombstones (``dead``) hide rows from every index.
  Collection-wide statistics are sums over the live rows of every unit.
* **checks** — ``keeldb check`` calls :meth:`DerivedIndex.check` for every segment file
  the index owns; damage there is reported as rebuildable, like an HNSW graph.

Adding a derived index touches one module (its implementation of :class:`DerivedIndex`)
plus registration (:func:`register`) and its file extensions in ``storage/format.py``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from keeldb.errors import CorruptionError

if TYPE_CHECKING:
    from keeldb.storage.fileio import FileSystem
    from keeldb.storage.manifest import CollectionConfig, SegmentEntry

log = logging.getLogger("keeldb")

__all__ = [
    "DerivedIndex",
    "MemtablePart",
    "RowSource",
    "indexes_for",
    "register",
    "segment_part",
]


class RowSource(Protocol):
    """The rows a segment part is built from, in the segment's row order."""

    rows: int

    def ids(self) -> list[str]: ...

    def metadata(self) -> Sequence[dict[str, Any]]: ...


class MemtablePart(Protocol):
    """A derived index's part for one memtable (mutated under the write lock only)."""

    def append(
        self, start_row: int, ids: Sequence[str], metadata: Sequence[dict[str, Any]]
    ) -> None:
        """Rows ``start_row ..`` were appended to the memtable (before they are published
        to readers)."""


class DerivedIndex(Protocol):
    """One kind of derived index, for one collection."""

    #: short name, unique per collection (``"text"``)
    name: str
    #: segment file extensions it owns (each listed in ``storage/format.py``)
    extensions: tuple[str, ...]

    def new_memtable_part(self) -> MemtablePart:
        """An empty part for a new memtable."""

    def write_segment_part(
        self, fs: FileSystem, directory: str, segment_id: int, source: RowSource
    ) -> int:
        """Write the part of a new segment (durable files under their final names, not
        yet named by any manifest); returns the bytes written."""

    def load_segment_part(self, fs: FileSystem, directory: str, segment_id: int, rows: int) -> Any:
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
) -> Any:
    """A segment's part of ``index``: loaded, or — when its file is missing or damaged —
    rebuilt from the segment's stored rows (``source``) with a warning, then loaded."""
    try:
        return index.load_segment_part(fs, directory, segment_id, source.rows)
    except CorruptionError as exc:
        log.warning(
            "segment %d: %s index: %s; rebuilding it from the segment's data",
            segment_id,
            index.name,
            exc,
        )
    index.write_segment_part(fs, directory, segment_id, source)
    fs.sync_dir(directory)
    return index.load_segment_part(fs, directory, segment_id, source.rows)
