"""Creating a collection directory and bringing one back after a clean close or a crash.

Recovery on open: read and verify the manifest -> map and verify its segments (an HNSW file
that is missing or damaged is rebuilt from the segment's vectors, with a warning) -> replay
WAL records newer than the manifest's checkpoint into a fresh memtable -> drop a torn tail
(reported) -> remove files no manifest names (a seal or merge cut short) -> start a new WAL
file and the background worker.
"""

from __future__ import annotations

import logging
import os
import time

from keeldb.engine.collection import Collection
from keeldb.engine.maintenance import Maintainer
from keeldb.engine.segment import Segment
from keeldb.engine.state import Options, State
from keeldb.errors import CorruptionError
from keeldb.storage.format import parse_wal_name
from keeldb.storage.manifest import CollectionConfig, Manifest, read_manifest, write_manifest
from keeldb.storage.records import decode_batch
from keeldb.storage.wal import WalWriter, read_wal

log = logging.getLogger("keeldb")

__all__ = ["create_collection", "open_collection"]

VERIFY_AT_OPEN_BYTES = 64 << 20


def create_collection(directory: str, config: CollectionConfig, options: Options) -> Collection:
    """Initialise ``directory`` (which must be new and empty) with a first manifest."""
    fs = options.fs
    fs.makedirs(directory)
    write_manifest(fs, directory, Manifest(1, config))
    return _start(directory, options)


def open_collection(directory: str, options: Options) -> Collection:
    """Open an existing collection directory, recovering from any crash."""
    return _start(directory, options)


def _start(directory: str, options: Options) -> Collection:
    fs = options.fs
    manifest = read_manifest(fs, directory)
    col = Collection(directory, manifest.config, options)
    col._manifest = manifest
    col._next_segment_id = manifest.next_segment_id
    segments: list[Segment] = []
    report: dict[str, object] = {"rebuilt_indexes": [], "torn_tail": None, "replayed_records": 0}
    try:
        for entry in manifest.segments:
            seg = Segment(fs, directory, entry, manifest.config)
            if seg.rebuilt_index:
                report["rebuilt_indexes"].append(entry.segment_id)  # type: ignore[attr-defined]
            # Small payloads are verified now (a few ms); large ones by the background
            # scrubber right after open, or now with verify=True (docs/format.md).
            if options.verify or seg.payload_bytes <= VERIFY_AT_OPEN_BYTES:
                seg.verify_payloads()
            segments.append(seg)
        mem = col._new_memtable()
        col._state = State((mem,), tuple(segments))
        col._last_seq = manifest.checkpoint_seq
        _replay(col, report)
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    col.recovery_report = report
    # The replayed records stay in their WAL files until a seal checkpoints them.
    first = col._last_seq + 1
    for name in fs.listdir(directory):
        # Numbered past the last replayed record, so holding none (replay refuses a gap):
        # created by a writer that died before appending to it. A later freeze would
        # collide with its name.
        wal_first = parse_wal_name(name)
        if wal_first is not None and wal_first >= first:
            fs.remove(os.path.join(directory, name))
    col._wal = WalWriter(fs, directory, first)
    col._maintainer = Maintainer(col)
    with col._maintainer.lock:  # the worker may start a seal: not before this cleanup
        col._maintainer._remove_obsolete(manifest, at_open=True)
    if col._state.active.n >= options.memtable_rows:
        with col._locked_for_write():
            col._freeze()
    return col


def _replay(col: Collection, report: dict[str, object]) -> None:
    fs = col.fs
    directory = col.directory
    assert col._manifest is not None
    checkpoint = col._manifest.checkpoint_seq
    names = sorted(
        (first, name)
        for name in fs.listdir(directory)
        if (first := parse_wal_name(name)) is not None
    )
    expected = checkpoint + 1
    t0 = time.perf_counter()
    replayed = 0
    for idx, (first, name) in enumerate(names):
        path = os.path.join(directory, name)
        is_last = idx == len(names) - 1
        scan = read_wal(fs, path, first, is_last=is_last, salvage=col.options.salvage)
        if scan.torn_at is not None:
            log.warning(
                "keeldb: dropped a torn record at the end of %s (offset %d)", path, scan.torn_at
            )
            report["torn_tail"] = {"file": path, "offset": scan.torn_at}
            if scan.torn_at < 64:
                fs.remove(path)
            else:
                f = fs.open_append(path, create=False)
                try:
                    f.truncate(scan.torn_at)
                finally:
                    f.close()
        if scan.salvaged_at is not None:
            log.error(
                "keeldb: salvage skipped damaged WAL data in %s from offset %d",
                path,
                scan.salvaged_at,
            )
            report.setdefault("salvaged", []).append({"file": path, "offset": scan.salvaged_at})  # type: ignore[attr-defined]
        for record in scan.records:
            if record.seq < expected:
                continue  # already in the segments
            if record.seq != expected and not col.options.salvage:
                raise CorruptionError(
                    f"WAL sequence gap: expected record {expected}, found {record.seq} "
                    "(a WAL file is missing)",
                    path=path,
                    offset=record.offset,
                )
            try:
                batch = decode_batch(record.payload)
            except ValueError as exc:
                raise CorruptionError(
                    f"undecodable WAL record: {exc}", path=path, offset=record.offset
                ) from exc
            col._apply(batch)
            col._last_seq = record.seq
            col._state.active.last_seq = record.seq
            expected = record.seq + 1
            replayed += 1
            if col._state.active.n >= col.options.memtable_rows:
                # Keep the replayed memtable bounded; sealed by the worker once it starts.
                col._state.active.frozen = True
                state = col._state
                col._state = State((*state.memtables, col._new_memtable()), state.segments)
    report["replayed_records"] = replayed
    report["replay_seconds"] = time.perf_counter() - t0
