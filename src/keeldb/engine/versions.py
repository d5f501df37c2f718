"""A collection's version set: the one owner of its durable bookkeeping.

Modelled on LevelDB's ``VersionSet``: one object per collection owns

* the **write lock** (``lock``) that orders writes, freezes and commits, and the
  ``backlog`` condition writers wait on while memtables await sealing;
* the **current state** (:class:`State`: memtables and segments) that readers take one
  reference to, replaced as a whole by :meth:`install` / :meth:`commit`;
* the **manifest** and the **commit** of a new state (:meth:`commit`): changed tombstones,
  then a new manifest (the single commit point), then removal of what it no longer names;
* **sequence numbers** (``last_seq``) and the **WAL**: appending records (:meth:`log`),
  group-commit fsync (:meth:`sync`), starting a new file at a freeze (:meth:`freeze`),
  listing and removing WAL files;
* **segment ids**: allocation, and the ids being written by a seal or merge that has not
  committed yet (protected from obsolete-file removal);
* the **storage-failed flag**: :meth:`poison` is the one place that marks the collection
  unwritable after a failed write or fsync.

Every method that changes state documents whether the caller must hold ``lock``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from keeldb.engine.memtable import Memtable
from keeldb.engine.state import State
from keeldb.errors import BusyError, KeelError, StorageError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import is_collection_file, parse_wal_name, segment_id_of
from keeldb.storage.manifest import (
    CollectionConfig,
    Manifest,
    SegmentEntry,
    live_files,
    write_manifest,
)
from keeldb.storage.segment_files import write_tombstones
from keeldb.storage.wal import WalWriter, list_wal_files

if TYPE_CHECKING:
    from keeldb.engine.segment import Segment

log = logging.getLogger("keeldb")

__all__ = ["VersionSet"]


class VersionSet:
    """The durable bookkeeping of one collection directory (see the module docstring).

    Built by recovery (:mod:`keeldb.engine.recovery`) from the manifest and the loaded
    segments; :meth:`open_wal` starts logging once the WAL has been replayed.
    """

    def __init__(
        self,
        fs: FileSystem,
        directory: str,
        manifest: Manifest,
        state: State,
        *,
        write_timeout_s: float,
    ) -> None:
        self.fs = fs
        self.directory = directory
        self.lock = threading.RLock()
        self.backlog = threading.Condition(self.lock)
        self.write_timeout_s = write_timeout_s
        self._manifest = manifest
        self._state = state
        self.last_seq = manifest.checkpoint_seq
        self.last_write_at = 0.0  # time.monotonic() of the last logged write
        self._next_segment_id = manifest.next_segment_id
        self._building: set[int] = set()  # segment ids being written, not yet committed
        self._wal: WalWriter | None = None
        self.failed: BaseException | None = None

    # --- the lock and the state -------------------------------------------------------------

    @property
    def config(self) -> CollectionConfig:
        return self._manifest.config

    @property
    def manifest(self) -> Manifest:
        """The manifest last committed (durable)."""
        return self._manifest

    @property
    def state(self) -> State:
        """The current searchable state (immutable; take one reference and use it)."""
        return self._state

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the write lock; :class:`BusyError` if it is not free within the write
        timeout."""
        if not self.lock.acquire(timeout=self.write_timeout_s):
            raise BusyError(f"write lock not available within {self.write_timeout_s} s")
        try:
            yield
        finally:
            self.lock.release()

    def install(self, state: State) -> None:
        """Make ``state`` current without a manifest (memtable-only changes: a freeze,
        replay). Caller holds the lock. Wakes writers waiting for the backlog."""
        self._state = state
        self.backlog.notify_all()

    def poison(self, exc: BaseException) -> None:
        """Mark the collection unwritable after a storage failure: the kernel may have
        dropped unsynced data, so only a reopen (which replays what is durable) is safe."""
        if self.failed is None:
            self.failed = exc

    # --- the WAL ----------------------------------------------------------------------------

    def open_wal(self) -> None:
        """Start logging after replay: remove WAL files numbered past the last replayed
        record (created by a writer that died before appending to them: they hold nothing,
        and a later freeze would collide with their name) and open a new file."""
        first = self.last_seq + 1
        for wal_first, name in list_wal_files(self.fs, self.directory):
            if wal_first >= first:
                self.fs.remove(os.path.join(self.directory, name))
        self._wal = WalWriter(self.fs, self.directory, first)

    def log(self, payload: Sequence[bytes | memoryview]) -> tuple[int, WalWriter, int]:
        """Append ``payload`` as the next WAL record. Caller holds the lock.

        Returns ``(seq, wal, end)``: the record's sequence number and what to pass to
        :meth:`sync` (after releasing the lock) to make it durable. A failed append
        poisons the collection and raises StorageError.
        """
        wal = self._wal
        assert wal is not None, "the WAL is open while the collection is"
        seq = self.last_seq + 1
        try:
            end = wal.append(seq, payload)
        except StorageError as exc:
            self.poison(exc)
            raise
        self.last_seq = seq
        self.last_write_at = time.monotonic()
        return seq, wal, end

    def sync(self, wal: WalWriter, end: int) -> None:
        """Make ``wal`` durable up to ``end`` (group commit: no lock needed). A failed
        fsync poisons the collection and raises StorageError."""
        try:
            wal.sync_to(end)
        except StorageError as exc:
            self.poison(exc)
            raise

    def sync_all(self) -> None:
        """Make every logged record durable (the ``flush`` barrier)."""
        with self.locked():
            wal = self._wal
        if wal is not None:
            self.sync(wal, wal.size_bytes)

    def freeze(self, new_memtable: Memtable) -> bool:
        """Freeze the active memtable, start ``new_memtable`` and a new WAL file. Caller
        holds the lock. Returns False (nothing done) when the active memtable is empty."""
        state = self._state
        if state.active.n == 0:
            return False
        assert self._wal is not None
        state.active.frozen = True
        old = self._wal
        # The old file must be durable before a newer one exists: with the order reversed,
        # a power cut between the two lost the old file's unsynced tail but kept the new
        # file, numbered past the lost record (a name the next freeze would reuse).
        # A WAL file that holds no record yet (opened after replaying older files) simply
        # continues: a new one would have the same name.
        if old.first_seq <= self.last_seq:
            try:
                old.close(sync=True)
                self._wal = WalWriter(self.fs, self.directory, self.last_seq + 1)
            except StorageError as exc:
                self.poison(exc)
                raise
        self.install(State((*state.memtables, new_memtable), state.segments))
        return True

    def close_wal(self, *, checkpointed: bool) -> None:
        """Close the WAL (syncing it when ``checkpointed``); a file that only holds
        records already in segments is removed. Caller holds the lock."""
        wal, self._wal = self._wal, None
        if wal is None:
            return
        wal.close(sync=checkpointed)
        if checkpointed and self._manifest.checkpoint_seq == self.last_seq:
            self.fs.remove(wal.path)  # empty: everything is in segments
            self.fs.sync_dir(self.directory)

    def wal_bytes(self) -> int:
        """Bytes of the collection's WAL files on disk."""
        total = 0
        try:
            for _first, name in list_wal_files(self.fs, self.directory):
                total += self.fs.size(os.path.join(self.directory, name))
        except (OSError, KeelError):
            pass  # a file removed meanwhile: the figure is an estimate
        return total

    def snapshot(self) -> tuple[Manifest, list[tuple[str, int | None]]]:
        """What a consistent copy of the collection needs, as of now: the committed
        manifest and ``(file name, length)`` for each file to copy (length None: the whole
        file; the WAL file being appended to: up to its last record). Every acknowledged
        record is durable first. The caller keeps upkeep from committing (which removes
        files) until the copy is done; writers may go on."""
        with self.locked():
            wal = self._wal
            if wal is not None:
                self.sync(wal, wal.size_bytes)
            manifest = self._manifest
            present = set(self.fs.listdir(self.directory))
            files: list[tuple[str, int | None]] = [
                (name, None) for name in sorted(live_files(manifest) & present)
            ]
            for _first, name in list_wal_files(self.fs, self.directory):
                if wal is not None and name == os.path.basename(wal.path):
                    files.append((name, wal.size_bytes))
                else:
                    files.append((name, None))
        return manifest, files

    # --- segment ids ------------------------------------------------------------------------

    def allocate_segment_id(self) -> int:
        """A new segment id, protected from obsolete-file removal until
        :meth:`release_segment_id` (a seal may commit while a merge writes its files)."""
        with self.locked():
            seg_id = self._next_segment_id
            self._next_segment_id += 1
            self._building.add(seg_id)
            return seg_id

    def release_segment_id(self, segment_id: int) -> None:
        """The segment's files are committed or abandoned: no longer protected."""
        self._building.discard(segment_id)

    # --- committing -------------------------------------------------------------------------

    def commit(self, state: State, *, checkpoint_seq: int | None = None) -> None:
        """Persist ``state`` and make it current: write changed tombstones and a new
        manifest (the commit point) covering WAL records up to ``checkpoint_seq`` (default:
        unchanged), then remove what it no longer references. Caller holds the lock.

        A failure before the manifest is durable poisons the collection and raises; the
        current state is then unchanged.
        """
        old = self._manifest
        if checkpoint_seq is None:
            checkpoint_seq = old.checkpoint_seq
        # The tombstones written below may come from writes whose WAL records are not
        # durable yet (fsync mode syncs after the write lock is released, none mode at
        # flush): sync them first, or a power cut could keep a tombstone but lose the
        # write that replaced the row, and with it the row's durable old version.
        if self._wal is not None:
            self.sync(self._wal, self._wal.size_bytes)
        generation = old.generation + 1
        entries: list[SegmentEntry] = []
        written: list[tuple[Segment, str, int]] = []
        for seg in state.segments:
            name = seg.persisted_tombstones
            if seg.dead_count != seg.persisted_dead_count or (seg.dead_count and name is None):
                name = write_tombstones(
                    self.fs, self.directory, seg.segment_id, generation, seg.dead
                )
                written.append((seg, name, int(np.count_nonzero(seg.dead))))
            entries.append(seg.entry(name if seg.dead_count else None))
        if written:
            self.fs.sync_dir(self.directory)
        manifest = Manifest(
            generation, old.config, tuple(entries), checkpoint_seq, self._next_segment_id
        )
        try:
            write_manifest(self.fs, self.directory, manifest)
        except KeelError as exc:
            self.poison(exc)
            raise
        self._manifest = manifest
        for seg, name, count in written:
            seg.persisted_tombstones = name
            seg.persisted_dead_count = count
        self.install(state)
        try:
            self.remove_obsolete()
        except StorageError as exc:
            # The commit is done (the manifest is durable): raising here would hide that
            # from the caller, and leftovers are removed by the next commit or open.
            log.warning("keeldb: cannot remove obsolete files in %s: %s", self.directory, exc)

    def checkpoint(self) -> None:
        """Persist every segment's tombstones and a manifest covering all sealed data
        (every record, when nothing waits in memory). Takes the lock."""
        with self.locked():
            checkpoint = self._manifest.checkpoint_seq
            state = self._state
            if len(state.memtables) == 1 and state.active.n == 0:
                checkpoint = self.last_seq
            self.commit(state, checkpoint_seq=checkpoint)

    def remove_obsolete(self, *, at_open: bool = False) -> None:
        """Delete WAL files wholly covered by the checkpoint and files no manifest names.

        ``at_open``: nothing is being written, so unreferenced segment files numbered at or
        above ``next_segment_id`` (a seal or merge cut short) go too; if they stayed, the
        next seal would reuse the number and fail on the existing file.
        """
        manifest = self._manifest
        fs = self.fs
        wal_files = list_wal_files(fs, self.directory)
        current = os.path.basename(self._wal.path) if self._wal is not None else None
        nexts = [first for first, _ in wal_files[1:]] + [None]
        for (_first, name), next_first in zip(wal_files, nexts, strict=True):
            if name != current and next_first is not None:
                if next_first <= manifest.checkpoint_seq + 1:
                    fs.remove(os.path.join(self.directory, name))
        live = live_files(manifest)
        for name in fs.listdir(self.directory):
            if parse_wal_name(name) is not None or name in live or not is_collection_file(name):
                continue
            seg_id = segment_id_of(name)
            if (
                not at_open
                and seg_id is not None
                and (seg_id >= manifest.next_segment_id or seg_id in self._building)
            ):
                continue  # being written by a seal or merge that has not committed yet
            fs.remove(os.path.join(self.directory, name))
        fs.sync_dir(self.directory)
