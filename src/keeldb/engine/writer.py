"""A collection's write path: from a validated batch to an acknowledged write.

Validate (the caller) -> prepare derived indexes' analysis (no lock) -> under the write
lock: back-pressure, resolve "keep the existing" metadata and documents, assign a
sequence number and append the WAL record, apply the batch to the memtable and
tombstones, freeze a full memtable -> fsync with group commit (no lock) -> acknowledge.
Replay at open applies logged batches through the same :meth:`WritePath.apply`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from keeldb.engine.memtable import Memtable
from keeldb.engine.resolve import resolve_kept
from keeldb.engine.state import Location, State, locate, make_memtable
from keeldb.engine.unit import Unit
from keeldb.engine.validation import (
    validate_documents,
    validate_ids,
    validate_metadata,
    validate_vectors,
)
from keeldb.errors import BusyError
from keeldb.storage.records import Batch, DeleteOp, UpsertOp, encode_batch
from keeldb.storage.segment_files import id_hashes
from keeldb.types import InsertStats, Record

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

__all__ = ["WritePath"]
# Per upsert op with documents (by ``id(op)``): the documents as given and each derived
# index's ``prepare`` of them, made before the write lock.
Early = dict[int, tuple[list[str | None], dict[str, Any]]]


class WritePath:
    """The write path of one collection (owned by it; every method but :meth:`write`
    and :meth:`update_metadata` runs with the collection's write lock held)."""

    def __init__(self, col: Collection) -> None:
        self.col = col
        self._spare: Memtable | None = None

    # --- memtable supply ------------------------------------------------------------------

    def new_memtable(self) -> Memtable:
        """A fresh memtable: the pre-faulted spare when one is ready (see
        :meth:`make_spare`), else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            return spare
        col = self.col
        return make_memtable(col.config, col.options, col.derived)

    def make_spare(self) -> None:
        """Prepare the next memtable with its pages already touched (background thread).

        On this kind of virtual machine the first write to a fresh page costs ~100x a
        warm copy (measured: ~10 ms per 1.5 MB batch), so a writer filling a brand-new
        memtable pays mostly page faults; faulting the spare's pages in the background
        (numpy releases the GIL) takes that off the write path.
        """
        if self._spare is None:
            col = self.col
            mem = make_memtable(col.config, col.options, col.derived)
            mem.prefault()
            self._spare = mem

    def drop_spare(self) -> None:
        """Release the spare memtable (at shutdown)."""
        self._spare = None

    def want_spare(self) -> None:
        """Ask the worker to prepare a spare memtable, unless one is ready (write lock)."""
        maintainer = self.col._maintainer
        if self._spare is None and maintainer is not None:
            maintainer.want_spare()

    def freeze(self) -> None:
        """Freeze the active memtable, start a new one and a new WAL file, and wake the
        sealer. Caller holds the write lock."""
        maintainer = self.col._maintainer
        if self.col.versions.freeze(self.new_memtable()) and maintainer is not None:
            maintainer.wake()

    def replay(self, batch: Batch, seq: int) -> None:
        """Apply a WAL record read back at open (before the collection's ``start``). A
        full memtable is frozen (sealed by the worker once it starts), so replay stays
        bounded."""
        versions = self.col.versions
        self.apply(batch)
        versions.last_seq = seq
        state = versions.state
        state.active.last_seq = seq
        if state.active.n >= self.col.options.memtable_rows:
            state.active.frozen = True
            with versions.lock:
                versions.install(State((*state.memtables, self.new_memtable()), state.segments))

    # --- writes -----------------------------------------------------------------------------

    def upsert_op(self, ids: Any, vectors: Any, metadata: Any, documents: Any = None) -> UpsertOp:
        """Validate an upsert's arguments (any shape) into an :class:`UpsertOp`; vectors
        None are computed from the documents by the collection's embedding function
        (after ids, metadata and documents are checked, so a bad batch embeds nothing)."""
        col = self.col
        id_list = validate_ids(ids)
        if vectors is None:
            if not id_list:
                vectors = np.empty((0, col.dim), dtype=np.float32)
            else:
                validate_metadata(metadata, len(id_list))  # fail before embedding
                validate_documents(documents, len(id_list))
                vectors = col.embedder.embed_documents(documents, len(id_list))
        vecs = validate_vectors(vectors, len(id_list), col.dim, col.metric)
        metas, meta_json = validate_metadata(metadata, len(id_list))
        docs = validate_documents(documents, len(id_list))
        return UpsertOp(id_list, vecs, metas, meta_json, docs)

    def write(self, batch: Batch, *, locked: bool = False) -> dict[str, int]:
        """Log and apply ``batch`` (validated), then make it durable per the durability
        mode; returns counts (``upserted``, ``deleted``, ``replaced``). ``locked``: the
        caller holds the write lock (no back-pressure wait then)."""
        col = self.col
        t0 = time.perf_counter()
        col._check_writable()
        # Derived indexes analyse the given documents before the lock (analysis is the
        # costly part of indexing text); entries that "keep" a document are re-analysed
        # under the lock only when the resolution below filled them in.
        early = self._prepare_early(batch)
        versions, options = col.versions, col.options
        with versions.locked():
            col._check_writable()
            if not locked:
                self._wait_for_backlog()
            resolve_kept(versions.state, batch, locate)
            seq, wal, end = versions.log(encode_batch(batch))
            counts = self.apply(batch, early)
            active = versions.state.active
            active.last_seq = seq
            wal_bytes = wal.size_bytes
            if active.n >= options.memtable_rows:
                self.freeze()
            elif active.n >= options.memtable_rows // 4:
                self.want_spare()
        if options.durability == "fsync":
            versions.sync(wal, end)
        if col._insert_callbacks:
            stats = InsertStats(
                time.perf_counter() - t0,
                counts["upserted"],
                counts["deleted"],
                counts["replaced"],
                wal_bytes,
            )
            for cb in list(col._insert_callbacks):
                cb(stats)
        return counts

    def _wait_for_backlog(self) -> None:
        """Back-pressure: wait while too many memtables await sealing (BusyError on timeout)."""
        col = self.col
        versions, options = col.versions, col.options
        deadline = time.monotonic() + options.write_timeout_s
        while len(versions.state.memtables) > options.max_frozen_memtables + 1:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BusyError(
                    f"{len(versions.state.memtables) - 1} memtables await sealing; "
                    f"write timed out after {options.write_timeout_s} s"
                )
            versions.backlog.wait(min(remaining, 0.5))
            col._check_writable()

    def _prepare_early(self, batch: Batch) -> Early:
        """Per upsert op with documents: the documents as given and each derived index's
        :meth:`prepare` of them."""
        early: Early = {}
        for op in batch:
            if isinstance(op, UpsertOp) and op.documents is not None:
                given = list(op.documents)
                early[id(op)] = (given, {d.name: d.prepare(given) for d in self.col.derived})
        return early

    def apply(self, batch: Batch, early: Early | None = None) -> dict[str, int]:
        """Apply a logged batch to memory (write lock held). Cannot fail on valid input.
        ``early``: derived-index preparations made before the lock (see :meth:`write`),
        used when the op's documents are still those they were made from."""
        state = self.col.versions.state
        derived = self.col.derived
        counts = {"upserted": 0, "deleted": 0, "replaced": 0}
        for op in batch:
            if isinstance(op, UpsertOp):
                hashes = id_hashes(op.ids)  # kept by the memtable: the seal reuses them
                locations = locate(state, op.ids, hashes)
                metas: list[dict[str, Any]] = []
                for i, loc in enumerate(locations):
                    meta = op.metadata[i]
                    if loc is not None and meta is None:
                        meta = loc[0].metadata_at(loc[1])
                    metas.append({} if meta is None else meta)
                # Old rows die before the new ones are published, and searches read the
                # active memtable before older units: a concurrent search may miss a
                # record being replaced, but never sees it twice.
                counts["replaced"] += kill(locations)
                pre = None if early is None else early.get(id(op))
                if pre is not None and pre[0] == op.documents:
                    prepared = pre[1]
                else:
                    prepared = {d.name: d.prepare(op.documents) for d in derived}
                state.active.append(op.ids, op.vectors, metas, hashes, op.documents, prepared)
                counts["upserted"] += len(op.ids)
            else:
                counts["deleted"] += kill(locate(state, op.ids))
        return counts

    def delete_matching(self, flt: Any) -> int:
        """Delete the live records matching the compiled filter ``flt``, logged as their
        resolved ids (one WAL record, under the write lock); returns how many."""
        from keeldb.engine.scan import matching_ids

        with self.col.versions.locked():
            matched = matching_ids(self.col.versions.state, flt)
            if not matched:
                return 0
            return self.write([DeleteOp(matched)], locked=True)["deleted"]

    def update_metadata(
        self, ids: Sequence[str], metadata: Sequence[dict[str, Any]], mode: str
    ) -> list[str]:
        """:meth:`keeldb.Collection.update` (arguments of any shape; validated here)."""
        from keeldb.errors import InvalidArgumentError

        if mode not in ("merge", "replace"):
            raise InvalidArgumentError(f"mode must be 'merge' or 'replace', got {mode!r}")
        id_list = validate_ids(ids)
        metas, _ = validate_metadata(metadata, len(id_list))
        if any(m is None for m in metas):
            raise InvalidArgumentError("update takes a metadata dict for every id")
        col = self.col
        col._check_writable()
        with col.versions.locked():
            records = col.get(id_list)
            found = [i for i, rec in enumerate(records) if rec is not None]
            missing = [id_list[i] for i, rec in enumerate(records) if rec is None]
            if not found:
                return missing
            new_metas: list[dict[str, Any] | None] = []
            for i in found:
                given = cast(dict[str, Any], metas[i])
                if mode == "replace":
                    new_metas.append(given)
                    continue
                old = cast(Record, records[i]).metadata
                merged = {**old, **given}
                new_metas.append({k: v for k, v in merged.items() if v is not None})
            op = UpsertOp(
                [id_list[i] for i in found],
                np.stack([cast(Record, records[i]).vector for i in found]),
                new_metas,
            )
            self.write([op], locked=True)
        return missing


def kill(locations: list[Location | None]) -> int:
    """Mark the rows at ``locations`` dead (None: absent), one call per unit; returns
    how many died (write lock held)."""
    by_unit: dict[int, tuple[Unit, list[int]]] = {}
    for loc in locations:
        if loc is not None:
            by_unit.setdefault(id(loc[0]), (loc[0], []))[1].append(loc[1])
    return sum(unit.kill(np.array(rows, dtype=np.int64)) for unit, rows in by_unit.values())
