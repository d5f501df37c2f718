"""Opening a collection directory: the factory that brings a collection back after a clean
close or a crash.

Recovery on open: read and verify the manifest -> map and verify its segments (an HNSW file
that is missing or damaged is rebuilt from the segment's vectors, with a warning) -> replay
WAL records newer than the manifest's checkpoint into a fresh memtable (derived indexes
load their segment parts with the segments, rebuilding damaged ones, and refill their
memtable parts through the same apply path as live writes) -> drop a torn tail
(reported) -> start a new WAL file and the background worker -> remove files no manifest
names (a seal or merge cut short).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from keeldb.engine.collection import Collection
from keeldb.engine.derived import DerivedIndex
from keeldb.engine.derived_kinds import indexes_for
from keeldb.engine.maintenance import Maintainer
from keeldb.engine.segment import Segment
from keeldb.engine.state import Options, State, make_memtable
from keeldb.engine.versions import VersionSet
from keeldb.errors import CorruptionError
from keeldb.storage.manifest import Manifest, read_manifest
from keeldb.storage.records import decode_batch
from keeldb.storage.wal import list_wal_files, read_wal

log = logging.getLogger("keeldb")

__all__ = ["open_collection"]

VERIFY_AT_OPEN_BYTES = 64 << 20


def open_collection(directory: str, options: Options) -> Collection:
    """Open an existing collection directory, recovering from any crash, and return it
    fully built (logging, upkeep running). ``collection.recovery_report`` says what
    recovery did: rebuilt indexes, a dropped torn tail, replayed records, salvage."""
    fs = options.fs
    manifest = read_manifest(fs, directory)
    report: dict[str, Any] = {"rebuilt_indexes": [], "torn_tail": None, "replayed_records": 0}
    derived = indexes_for(manifest.config)
    segments = _load_segments(directory, manifest, options, report, derived)
    try:
        state = State((make_memtable(manifest.config, options, derived),), tuple(segments))
        versions = VersionSet(
            fs, directory, manifest, state, write_timeout_s=options.write_timeout_s
        )
        col = Collection(directory, options, versions)
        _replay(col, manifest, options, report)
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    col.recovery_report = report
    # The replayed records stay in their WAL files until a seal checkpoints them.
    col.start(Maintainer(col))
    return col


def _load_segments(
    directory: str,
    manifest: Manifest,
    options: Options,
    report: dict[str, Any],
    derived: Sequence[DerivedIndex],
) -> list[Segment]:
    segments: list[Segment] = []
    try:
        for entry in manifest.segments:
            seg = Segment(options.fs, directory, entry, manifest.config, derived)
            if seg.rebuilt_index:
                report["rebuilt_indexes"].append(entry.segment_id)
            # Small payloads are verified now (a few ms); large ones by the background
            # scrubber right after open, or now with verify=True (docs/format.md).
            if options.verify or seg.payload_bytes <= VERIFY_AT_OPEN_BYTES:
                seg.verify_payloads()
            segments.append(seg)
    except BaseException:
        for seg in segments:
            seg.close()
        raise
    return segments


def _replay(col: Collection, manifest: Manifest, options: Options, report: dict[str, Any]) -> None:
    fs = options.fs
    directory = col.directory
    names = list_wal_files(fs, directory)
    expected = manifest.checkpoint_seq + 1
    t0 = time.perf_counter()
    replayed = 0
    for idx, (first, name) in enumerate(names):
        path = os.path.join(directory, name)
        scan = read_wal(fs, path, first, is_last=idx == len(names) - 1, salvage=options.salvage)
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
            report.setdefault("salvaged", []).append({"file": path, "offset": scan.salvaged_at})
        for record in scan.records:
            if record.seq < expected:
                continue  # already in the segments
            if record.seq != expected and not options.salvage:
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
            col.writes.replay(batch, record.seq)
            expected = record.seq + 1
            replayed += 1
    report["replayed_records"] = replayed
    report["replay_seconds"] = time.perf_counter() - t0
