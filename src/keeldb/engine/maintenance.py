"""Background upkeep of a collection: seal frozen memtables, merge small segments into HNSW
segments, vacuum deleted rows, checkpoint tombstones, remove obsolete files.

One :class:`Maintainer` per collection owns all of this, with two worker threads: a seal
worker (``lock``) and a merge worker (``merge_lock``), so that a merge that takes minutes on
a large segment never delays the seals that writers wait for; ``compact()`` and
``close()`` take both. Heavy work (writing files, building graphs) runs without the
collection's write lock; only installing the result takes it:
transfer deletes that arrived meanwhile, write the new manifest (the commit point), swap
the searchable state. Searches keep using the old segments until that swap.

Merge policy (``docs/params.md``): flat segments are appended to the largest HNSW segment
below ``max_segment_rows`` by cloning its graph and inserting only the new rows, so every
vector is inserted into a graph about once; with no HNSW segment yet, one is built when
the flat rows reach ``hnsw_min_rows``; otherwise flat segments are combined once there are
more than four. A segment whose deleted fraction passes ``vacuum_fraction`` is rewritten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from keeldb.engine.memtable import Memtable
from keeldb.engine.segment import Segment, write_segment
from keeldb.engine.state import State
from keeldb.errors import CorruptionError, StorageError
from keeldb.index.hnsw import HnswIndex
from keeldb.storage.manifest import SegmentEntry
from keeldb.storage.segment_files import encode_metadata_rows
from keeldb.types import CompactionReport

if TYPE_CHECKING:
    from keeldb.engine.collection import Collection

log = logging.getLogger("keeldb")

__all__ = ["Maintainer", "ProgressCallback"]

# progress(phase, done, total): see Collection.compact.
ProgressCallback = Callable[[str, int, int], None]

MAX_FLAT_SEGMENTS = 4
# Background merges yield to write bursts (as LSM engines give writes priority over
# compaction): a merge waits until no write has arrived for MERGE_QUIET_S seconds, unless
# the rows waiting in flat segments exceed MERGE_BACKLOG_MEMTABLES memtables.
MERGE_QUIET_S = 0.5
MERGE_BACKLOG_MEMTABLES = 8


@dataclass
class _Input:
    """A segment being merged: its rows taken (all, or live at snapshot) and their
    positions in the output."""

    segment: Segment
    dead_snapshot: np.ndarray
    taken: np.ndarray  # input rows copied into the output
    offset: int  # output row of taken[0]


class Maintainer:
    """Runs sealing/merging for one collection, in a thread or inline."""

    def __init__(self, col: Collection) -> None:
        self.col = col
        # Two locks, so that a merge that takes minutes never delays a seal (writes wait
        # for seals through back-pressure): ``lock`` serialises sealing and checkpoints,
        # ``merge_lock`` merges and vacuums. Order: merge_lock before lock.
        self.lock = threading.Lock()
        self.merge_lock = threading.Lock()
        self._wake = threading.Event()
        self._merge_wake = threading.Event()
        self._stop = False
        self._scrub_pending = not col.options.verify
        self._thread: threading.Thread | None = None
        self._merge_thread: threading.Thread | None = None
        self._spare_wanted = threading.Event()
        self._spare_thread: threading.Thread | None = None
        self.last_error: BaseException | None = None
        # The progress callback of the compact() in progress (set and cleared under
        # merge_lock, so background merges never report).
        self._progress: ProgressCallback | None = None
        if col.options.background:
            label = f"{col.workspace}/{col.name}"
            self._thread = threading.Thread(
                target=self._run, name=f"keeldb-seal-{label}", daemon=True
            )
            self._merge_thread = threading.Thread(
                target=self._merge_run, name=f"keeldb-merge-{label}", daemon=True
            )
            self._thread.start()
            self._merge_thread.start()

    # --- scheduling -----------------------------------------------------------------------

    def want_spare(self) -> None:
        """Ask for a pre-faulted spare memtable (prepared by a small helper thread, so a
        long merge in the worker does not delay it). No-op in inline mode."""
        if self._thread is None or self._stop:
            return
        if self._spare_thread is None:
            self._spare_thread = threading.Thread(
                target=self._spare_loop, name=f"keeldb-spare-{self.col.name}", daemon=True
            )
            self._spare_thread.start()
        self._spare_wanted.set()

    def _spare_loop(self) -> None:
        while not self._stop:
            self._spare_wanted.wait(timeout=1.0)
            if self._stop:
                break
            if self._spare_wanted.is_set():
                self._spare_wanted.clear()
                try:
                    self.col.writes.make_spare()
                except MemoryError:
                    log.warning("keeldb: no memory for a spare memtable; writes fault pages")

    def wake(self) -> None:
        if self._thread is None:
            # Inline mode. If maintenance is already running (compact() or close() froze
            # the memtable while holding the lock, on this thread or another), it seals
            # the frozen memtable itself; waiting for the lock here would deadlock.
            self.run_once(blocking=False)
        else:
            self._wake.set()

    def _run(self) -> None:
        """The seal worker: seals frozen memtables as soon as they appear."""
        while not self._stop:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            if self._stop:
                break
            self._guarded(self.seal_once)

    def _merge_run(self) -> None:
        """The merge worker: scrubs once after open, then merges and vacuums when asked."""
        if self._scrub_pending:
            self._scrub_pending = False
            self._guarded(self.scrub)
        while not self._stop:
            self._merge_wake.wait(timeout=1.0)
            self._merge_wake.clear()
            if self._stop:
                break
            self._guarded(self.merge_once)

    def _guarded(self, work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as exc:  # a worker must not die silently
            self.last_error = exc
            log.exception("keeldb maintenance failed for %s/%s", self.col.workspace, self.col.name)
            if isinstance(exc, StorageError) and not isinstance(exc, CorruptionError):
                self.col.versions.poison(exc)
            time.sleep(1.0)

    def seal_once(self, *, blocking: bool = True) -> None:
        """Seal every frozen memtable (without ``blocking``: only if no seal is running),
        then ask for a merge."""
        if not self.lock.acquire(blocking=blocking):
            return
        try:
            self._seal_frozen()
        finally:
            self.lock.release()
        if self._merge_thread is not None:
            self._merge_wake.set()

    def _write_burst(self) -> bool:
        """Whether writes are streaming in and the flat backlog is still bounded."""
        col = self.col
        quiet = time.monotonic() - col.versions.last_write_at >= MERGE_QUIET_S
        if quiet or self._stop:
            return False
        backlog = sum(s.rows for s in col.versions.state.segments if s.kind == "flat")
        return backlog < MERGE_BACKLOG_MEMTABLES * col.options.memtable_rows

    def merge_once(self, *, blocking: bool = True) -> None:
        """Apply the merge and vacuum policies (without ``blocking``: only if no merge is
        running)."""
        if self._merge_thread is not None:
            while self._write_burst():  # background only: inline merges run at once
                time.sleep(MERGE_QUIET_S / 5)
            if self._stop:
                return  # closing: close() seals; merging can wait for the next open
        if not self.merge_lock.acquire(blocking=blocking):
            return
        try:
            self._merge_policy(force=False)
            self._vacuum_policy(threshold=self.col.options.vacuum_fraction)
        finally:
            self.merge_lock.release()

    def run_once(self, *, blocking: bool = True) -> None:
        """Inline maintenance (``background=False``): seal, merge, and scrub once."""
        self.seal_once(blocking=blocking)
        self.merge_once(blocking=blocking)
        if self._scrub_pending and not self._stop:
            self._scrub_pending = False
            self.scrub()

    def compact(self, progress: ProgressCallback | None = None) -> CompactionReport:
        """Seal the active memtable, merge everything indexable and vacuum every segment
        with deleted rows. Blocks the caller (not searches) until done.

        ``progress(phase, done, total)`` is called before and after each phase (see
        :meth:`Collection.compact`); it runs on the caller's thread, inside the
        maintenance locks, so it must be quick and must not call back into the
        collection."""
        t0 = time.perf_counter()
        col = self.col
        with self.merge_lock:
            self._progress = progress
            try:
                with self.lock:
                    state = col.versions.state
                    before = len(state.segments) + sum(1 for m in state.memtables if m.n)
                    dead_before = sum(s.dead_count for s in state.segments) + sum(
                        m.dead_count for m in state.memtables
                    )
                    pending = sum(m.n for m in state.memtables)
                    self._report("sealing", 0, pending)
                    with col.versions.locked():
                        col.writes.freeze()
                    self._seal_frozen()
                    self._report("sealing", pending, pending)
                indexed = self._merge_policy(force=True)
                indexed += self._vacuum_policy(threshold=0.0)
                with self.lock:
                    self._seal_frozen()  # writes that arrived meanwhile may have frozen more
                    col.versions.checkpoint()
            finally:
                self._progress = None
            after = len(col.versions.state.segments)
            dead_after = sum(s.dead_count for s in col.versions.state.segments)
        return CompactionReport(
            before, after, max(dead_before - dead_after, 0), indexed, time.perf_counter() - t0
        )

    def shutdown(self, *, checkpoint: bool) -> None:
        """Stop the worker; with ``checkpoint`` seal the memtable and write a manifest
        covering every record, so the next open replays nothing."""
        self._stop = True
        self._wake.set()
        self._merge_wake.set()
        self._spare_wanted.set()
        for thread in (self._thread, self._merge_thread, self._spare_thread):
            if thread is not None:
                thread.join()  # a merge in progress finishes first
        col = self.col
        col.writes.drop_spare()
        with self.merge_lock, self.lock:
            if checkpoint:
                with col.versions.locked():
                    col.writes.freeze()
                self._seal_frozen()
                col.versions.checkpoint()
            with col.versions.locked():
                col.versions.close_wal(checkpointed=checkpoint)

    def _report(self, phase: str, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress(phase, done, total)

    # --- sealing ------------------------------------------------------------------------------

    def _seal_frozen(self) -> int:
        sealed = 0
        while True:
            frozen = [m for m in self.col.versions.state.memtables[:-1]]
            if not frozen:
                return sealed
            self._seal(frozen[0])
            sealed += 1

    def _seal(self, mem: Memtable) -> None:
        col = self.col
        with col.versions.locked():
            n = mem.n
            snapshot = mem.dead[:n].copy()
        keep = np.flatnonzero(~snapshot)
        segment: Segment | None = None
        if len(keep):
            seg_id = col.versions.allocate_segment_id()
            rows = keep.tolist()
            metas = [mem.metadata[i] for i in rows]
            row_map = np.full(n, -1, dtype=np.int64)
            row_map[keep] = np.arange(len(keep))
            docs = _RowDocuments(mem.documents_of(rows) if mem.document_count else None, len(rows))
            _write_parts(col, seg_id, docs, {name: [(p, row_map)] for name, p in mem.parts.items()})
            write_segment(
                col.fs,
                col.directory,
                seg_id,
                col.config,
                mem.vectors[keep],
                [mem.ids[i] for i in rows],
                encode_metadata_rows(metas),
                None,  # a flat segment: filter columns are built on first use
                None,
                mem.hashes[keep],
                documents=docs.docs,
            )
            segment = Segment(
                col.fs,
                col.directory,
                SegmentEntry(seg_id, len(keep), "flat", documents=docs.has_documents),
                col.config,
                col.derived,
            )
            columns = mem.columns_if_built()
            if columns is not None and len(rows) == n == len(columns):
                segment.adopt_columns(columns)  # filtered searches ran on the memtable
        with col.versions.locked():
            if segment is not None:
                later = np.flatnonzero(mem.dead[:n] & ~snapshot)
                segment.kill(row_map[later])
            state = col.versions.state
            memtables = tuple(m for m in state.memtables if m is not mem)
            segments = state.segments + ((segment,) if segment is not None else ())
            try:
                col.versions.commit(State(memtables, segments), checkpoint_seq=mem.last_seq)
            finally:
                if segment is not None:
                    col.versions.release_segment_id(segment.segment_id)

    # --- merging and vacuuming ------------------------------------------------------------------

    def _merge_policy(self, *, force: bool) -> int:
        col = self.col
        opts = col.options
        segments = col.versions.state.segments
        flats = [s for s in segments if s.kind == "flat"]
        if not flats:
            return 0
        flat_live = sum(s.live_count for s in flats)
        hnsw = [s for s in segments if s.kind == "hnsw" and s.rows < opts.max_segment_rows]
        target = max(hnsw, key=lambda s: s.rows) if hnsw else None
        total_live = sum(s.live_count for s in segments)
        if (
            target is None
            and flat_live < opts.hnsw_min_rows
            and not (force and total_live >= opts.hnsw_min_rows)
        ):
            # Still small: stay exact, but keep the number of flat segments bounded.
            if len(flats) > MAX_FLAT_SEGMENTS or (force and len(flats) > 1):
                self._merge(None, flats, "flat")
            return 0
        if target is not None and target.rows + flat_live > opts.max_segment_rows:
            target = None  # the target is full: start a new HNSW segment
        self._merge(target, flats, "hnsw")
        return flat_live

    def _vacuum_policy(self, *, threshold: float) -> int:
        indexed = 0
        for seg in list(self.col.versions.state.segments):
            if seg.dead_count and seg.dead_count / max(seg.rows, 1) > threshold:
                live = seg.live_count
                kind = "hnsw" if live >= self.col.options.hnsw_min_rows else "flat"
                self._report("vacuuming", 0, seg.rows)
                self._merge(None, [seg], kind)
                self._report("vacuuming", seg.rows, seg.rows)
                indexed += live if kind == "hnsw" else 0
        return indexed

    def _merge(self, base: Segment | None, others: list[Segment], kind: str) -> None:
        """Write one segment holding ``base``'s rows (all, graph reused) followed by the
        live rows of ``others``; then install it in place of the inputs."""
        col = self.col
        inputs = self._snapshot_inputs(base, others)
        total_rows = sum(len(i.taken) for i in inputs)
        if total_rows == 0:
            self._install(inputs, None)
            return
        # Verify what is copied: the new segment gets fresh checksums, so damage not found
        # yet (payload checksums are deferred at open) would become permanent and silent.
        try:
            for i in inputs:
                i.segment.verify_payloads()
        except CorruptionError as exc:
            col.mark_damaged(exc)  # as the scrubber does: refuse searches, never answer wrong
            raise
        vectors = np.concatenate([i.segment.vectors.array[i.taken] for i in inputs])
        ids: list[str] = []
        raw_meta: list[bytes] = []
        for i in inputs:
            ids.extend(i.segment.ids.ids_at(i.taken))
            raw_meta.extend(i.segment.meta.raw_at(r) for r in i.taken.tolist())
        hashes = np.concatenate([i.segment.ids.row_hashes(i.taken) for i in inputs])
        metas = None
        index = None
        new_row = None  # output row of each merged row, when the rows are reordered
        vector_order = None  # row i of the output takes vectors[vector_order[i]]
        order = None
        if kind == "hnsw":
            metas = [m for i in inputs for m in i.segment.metadata_many(i.taken.tolist())]
            added = total_rows - (base.rows if base is not None else 0)
            self._report("indexing", 0, added)
            index = self._graph(base, vectors, added)
            # Rows in breadth-first graph order: a search's rows sit close in memory.
            order = index.locality_order()
            index.permute(order)
            if index.exact_scores:
                # The index's own (now reordered) float32 copy of the vectors: no third copy.
                del vectors
                vectors = index.stored_vectors()
            else:
                # The graph holds float16 copies only: the .vec writer gathers the rows in
                # the new order a slice at a time (no whole reordered copy).
                vector_order = order
            rows = order.tolist()
            ids = [ids[r] for r in rows]
            hashes = hashes[order]
            raw_meta = [raw_meta[r] for r in rows]
            metas = [metas[r] for r in rows]
            new_row = np.empty_like(order)
            new_row[order] = np.arange(len(order))
        seg_id = col.versions.allocate_segment_id()
        self._report("writing", 0, total_rows)
        docs = self._write_derived(inputs, seg_id, order, new_row)
        write_segment(
            col.fs,
            col.directory,
            seg_id,
            col.config,
            vectors,
            ids,
            raw_meta,
            metas,
            index,
            hashes,
            vector_order,
            documents=docs.docs,
        )
        self._report("writing", total_rows, total_rows)
        del vectors, index  # the vectors may be a view of the index
        try:
            entry = SegmentEntry(seg_id, total_rows, kind, documents=docs.has_documents)
            out = Segment(col.fs, col.directory, entry, col.config, col.derived)
            self._install(inputs, out, new_row)
        finally:
            col.versions.release_segment_id(seg_id)

    def _snapshot_inputs(self, base: Segment | None, others: list[Segment]) -> list[_Input]:
        """The merge's inputs with the rows each contributes (``base``: all of them, its
        graph keeps them; others: the rows live now), under the write lock."""
        with self.col.versions.locked():
            inputs: list[_Input] = []
            offset = 0
            for seg in ([base] if base is not None else []) + others:
                snap = seg.dead.copy()
                taken = np.arange(seg.rows) if seg is base else np.flatnonzero(~snap)
                inputs.append(_Input(seg, snap, taken, offset))
                offset += len(taken)
        return inputs

    def _write_derived(
        self,
        inputs: list[_Input],
        seg_id: int,
        order: np.ndarray | None,
        new_row: np.ndarray | None,
    ) -> _RowDocuments:
        """Write the merged segment's documents and derived-index parts (in its final row
        order: ``order`` when the rows were reordered); returns the merged documents."""
        col = self.col
        docs = _merged_documents(inputs, order)
        maps = _row_maps(inputs, new_row)
        parts = {
            name: [(i.segment.parts[name], m) for i, m in zip(inputs, maps, strict=True)]
            for name in (d.name for d in col.derived)
        }
        _write_parts(col, seg_id, docs, parts)
        return docs

    def _graph(self, base: Segment | None, vectors: np.ndarray, added: int) -> HnswIndex:
        """The graph of a merge's ``vectors``: ``base``'s graph (its rows come first)
        extended with the ``added`` others, or a new one. A compact() that asked for
        progress gets an ``indexing`` report per chunk of rows inserted (the last one
        says ``done == total``); otherwise the rows go to faiss in one call."""
        step = None
        if self._progress is not None and added:
            progress = self._progress
            step = lambda done: progress("indexing", done, added)  # noqa: E731
        if base is not None and base.hnsw is not None:
            index = base.hnsw.extend(vectors[base.rows :], step)
        else:
            config = self.col.config
            index = HnswIndex.build(vectors, config.metric, config.m, config.ef_construction, step)
        if step is None:
            self._report("indexing", added, added)
        return index

    def _install(
        self, inputs: list[_Input], out: Segment | None, new_row: np.ndarray | None = None
    ) -> None:
        """Replace ``inputs`` by ``out``. ``new_row`` maps a merged row (``offset`` +
        position in ``taken``) to its row in ``out`` when the merge reordered them."""
        col = self.col
        with col.versions.locked():
            if out is not None:
                for i in inputs:
                    # Base rows keep their dead flags (the graph still holds them); rows
                    # deleted since the snapshot are carried over too.
                    now_dead = i.segment.dead[i.taken]
                    merged = i.offset + np.flatnonzero(now_dead)
                    out.kill(merged if new_row is None else new_row[merged])
            gone = {id(i.segment) for i in inputs}
            state = col.versions.state
            kept = tuple(s for s in state.segments if id(s) not in gone)
            col.versions.commit(State(state.memtables, kept + ((out,) if out is not None else ())))

    # --- verification ------------------------------------------------------------------------

    def scrub(self) -> None:
        """Verify the checksums deferred at open (vectors, HNSW storage). On damage the
        collection refuses searches with the CorruptionError (never a wrong answer later).
        """
        for seg in list(self.col.versions.state.segments):
            if self._stop:
                return
            try:
                seg.verify_payloads()
            except CorruptionError as exc:
                log.error("keeldb: %s", exc)
                self.col.mark_damaged(exc)
                return


class _RowDocuments:
    """A new segment's documents in row order (None: no row has one), as a derived
    index's :class:`~keeldb.engine.derived.RowSource`."""

    def __init__(self, docs: list[str | None] | None, rows: int = 0) -> None:
        self.docs = docs if docs is not None and any(d is not None for d in docs) else None
        self._rows = len(docs) if docs is not None else rows

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def has_documents(self) -> bool:
        return self.docs is not None

    def documents(self) -> list[str | None]:
        return self.docs if self.docs is not None else [None] * self._rows


def _write_parts(
    col: Collection,
    seg_id: int,
    docs: _RowDocuments,
    parts: dict[str, list[tuple[Any, np.ndarray]]],
) -> None:
    """Write each derived index's part of a new segment from the inputs' parts."""
    for index in col.derived:
        index.write_segment_part(col.fs, col.directory, seg_id, docs, parts[index.name])


def _row_maps(inputs: list[_Input], new_row: np.ndarray | None) -> list[np.ndarray]:
    """For each merge input, its rows' numbers in the output (-1: not copied)."""
    maps = []
    for i in inputs:
        m = np.full(i.segment.rows, -1, dtype=np.int64)
        out = i.offset + np.arange(len(i.taken), dtype=np.int64)
        m[i.taken] = out if new_row is None else new_row[out]
        maps.append(m)
    return maps


def _merged_documents(inputs: list[_Input], order: np.ndarray | None) -> _RowDocuments:
    """The merged segment's documents in its final row order (``order[i]`` = the merged
    row that becomes output row i, when the merge reorders rows)."""
    total = sum(len(i.taken) for i in inputs)
    if not any(i.segment.has_documents for i in inputs):
        return _RowDocuments(None, total)
    docs: list[str | None] = []
    for i in inputs:
        docs.extend(i.segment.documents_of(i.taken.tolist()))
    if order is not None:
        docs = [docs[r] for r in order.tolist()]
    return _RowDocuments(docs)
