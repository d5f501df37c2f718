"""Options and the immutable snapshot of a collection's searchable units."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from keeldb.engine.derived import DerivedIndex
from keeldb.engine.memtable import Memtable
from keeldb.engine.segment import Segment
from keeldb.engine.unit import Unit
from keeldb.storage.fileio import FileSystem, OsFileSystem
from keeldb.storage.manifest import CollectionConfig
from keeldb.storage.segment_files import id_hashes

__all__ = ["DURABILITY_MODES", "Location", "Options", "State", "locate", "make_memtable"]

Location = tuple[Unit, int]  # a unit and a row of it

DURABILITY_MODES = ("fsync", "flush", "none")


@dataclass(frozen=True)
class Options:
    """Engine tuning knobs (``keeldb.open`` keyword arguments; see ``docs/params.md``).

    * ``durability``: ``fsync`` | ``flush`` | ``none`` (README's durability table).
    * ``memtable_rows``: rows in the growing memtable before it is sealed.
    * ``hnsw_min_rows``: a collection's sealed rows are indexed with HNSW once there are
      at least this many; below it they are searched exactly.
    * ``max_segment_rows``: merges stop growing an HNSW segment past this size.
    * ``vacuum_fraction``: the background policy rewrites a segment once more than this
      fraction of its rows is deleted.
    * ``write_timeout_s``: how long a write may wait for the seal/merge backlog before
      raising ``BusyError``.
    * ``max_frozen_memtables``: backlog of unsealed memtables before writes wait.
    * ``background``: run sealing and merging in a background thread (else inline).
    * ``salvage``: skip damaged WAL records instead of refusing to open.
    * ``verify``: verify every checksum of large payloads at open instead of in the
      background scrubber.
    """

    durability: str = "fsync"
    memtable_rows: int = 16384
    hnsw_min_rows: int = 10000
    max_segment_rows: int = 1_000_000
    vacuum_fraction: float = 0.2
    write_timeout_s: float = 30.0
    max_frozen_memtables: int = 4
    background: bool = True
    salvage: bool = False
    verify: bool = False
    fs: FileSystem = field(default_factory=OsFileSystem)


@dataclass(frozen=True)
class State:
    """What a reader searches: frozen + active memtables (active last) and segments.

    Replaced as a whole under the write lock; readers take one reference and use it.
    """

    memtables: tuple[Memtable, ...]
    segments: tuple[Segment, ...]

    @property
    def active(self) -> Memtable:
        return self.memtables[-1]

    def units(self) -> tuple[Unit, ...]:
        """Every unit: memtables (active last), then segments."""
        return (*self.memtables, *self.segments)


def make_memtable(
    config: CollectionConfig, options: Options, derived: Sequence[DerivedIndex] = ()
) -> Memtable:
    """A new, empty memtable for a collection with ``config``, with an empty part of each
    of the collection's ``derived`` indexes.

    Its arrays reserve room for a full memtable (address space only: pages are committed
    when first written), up to 256 MiB of vectors.
    """
    cap = min(options.memtable_rows + 1024, max(1024, (256 << 20) // (4 * config.dim)))
    mem = Memtable(config.dim, config.metric, capacity=cap)
    mem.parts = {index.name: index.new_memtable_part() for index in derived}
    return mem


def locate(state: State, ids: list[str], hashes: np.ndarray | None = None) -> list[Location | None]:
    """Where each id currently lives in ``state`` (live rows only; newest unit first);
    ``hashes`` are ``id_hashes(ids)`` when the caller has them."""
    found: list[Location | None] = [None] * len(ids)
    missing = list(range(len(ids)))
    for mem in reversed(state.memtables):
        if not missing:
            break
        sub = ids if len(missing) == len(ids) else [ids[i] for i in missing]
        rows = mem.locate(sub, None)
        if rows:
            for j, row in rows.items():
                found[missing[j]] = (mem, row)
            missing = [i for j, i in enumerate(missing) if j not in rows]
    if missing and state.segments:
        sub = [ids[i] for i in missing]
        sub_hashes = id_hashes(sub) if hashes is None else hashes[missing]
        for seg in reversed(state.segments):
            for j, row in seg.locate(sub, sub_hashes).items():
                if found[missing[j]] is None:
                    found[missing[j]] = (seg, row)
    return found
