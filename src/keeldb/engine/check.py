"""``keeldb.check``: verify every checksum and reference of a database, read-only.

Unlike opening, checking never repairs: it reports. A torn WAL tail (an unacknowledged
write cut short) and files no manifest references are warnings, since open handles them;
everything else that fails verification is a problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from keeldb.engine.derived_kinds import indexes_for
from keeldb.engine.segment import load_columns
from keeldb.errors import KeelError
from keeldb.index.hnsw import HnswIndex
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import (
    WORKSPACES_DIR,
    is_collection_file,
    is_leftover_dir,
    segment_file_name,
)
from keeldb.storage.lock import DirectoryLock
from keeldb.storage.manifest import live_files, read_manifest, segment_files
from keeldb.storage.records import decode_batch
from keeldb.storage.segment_files import (
    IdTable,
    MetadataTable,
    map_vectors,
    read_tombstones,
)
from keeldb.storage.text_files import DocumentsTable
from keeldb.storage.wal import list_wal_files, read_wal

__all__ = ["CheckReport", "check", "check_collection"]


@dataclass
class CheckReport:
    """Result of :func:`check`: ``ok`` is False when any problem was found."""

    path: str
    files_checked: int = 0
    collections: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(path: str | os.PathLike[str]) -> CheckReport:
    """Verify every file of the database at ``path`` without changing anything.

    Takes the directory lock for the duration (DatabaseLockedError if the database is open
    elsewhere, e.g. by a running server: check it there, or stop it first).
    """
    root = os.path.abspath(os.fspath(path))
    report = CheckReport(root)
    if not os.path.isdir(root):
        report.problems.append(f"{root}: not a directory")
        return report
    lock = DirectoryLock(root, write_pid=False)
    try:
        ws_root = os.path.join(root, WORKSPACES_DIR)
        if not os.path.isdir(ws_root):
            return report
        for ws in sorted(os.listdir(ws_root)):
            ws_dir = os.path.join(ws_root, ws)
            if not os.path.isdir(ws_dir):
                continue
            for name in sorted(os.listdir(ws_dir)):
                if is_leftover_dir(name):
                    report.warnings.append(f"{ws}/{name}: leftover of an interrupted create/drop")
                    continue
                if name.startswith("."):
                    continue
                report.collections += 1
                check_collection(os.path.join(ws_dir, name), f"{ws}/{name}", report)
    finally:
        lock.release()
    return report


def check_collection(directory: str, label: str, report: CheckReport) -> None:
    """Verify one collection directory (not open), adding what is found to ``report``
    with ``label`` (``workspace/name``) before each message."""
    fs = OsFileSystem()
    try:
        manifest = read_manifest(fs, directory)
    except KeelError as exc:
        report.problems.append(f"{label}: {exc}")
        return
    report.files_checked += 1
    config = manifest.config
    referenced = live_files(manifest)
    derived = indexes_for(config)
    for entry in manifest.segments:
        sid = entry.segment_id
        names, _optional = segment_files(entry)
        # A flat segment may have no column file (it builds its columns in memory); one it
        # has is checked like any other.
        cols_name = segment_file_name(sid, "cols")
        has_cols = cols_name in names or os.path.exists(os.path.join(directory, cols_name))
        for name in names:
            if not os.path.exists(os.path.join(directory, name)):
                report.problems.append(f"{label}: missing file {name} (named by the manifest)")
        try:
            vectors = map_vectors(directory, sid, entry.rows, config.dim)
            vectors.verify()
            report.files_checked += 1
            ids = IdTable(directory, sid, entry.rows)
            report.files_checked += 1
            meta = MetadataTable(directory, sid, entry.rows)
            for row in range(entry.rows):
                meta.at(row)
            report.files_checked += 1
            if has_cols:
                load_columns(fs, directory, sid, entry.rows)
                report.files_checked += 1
            if entry.tombstones:
                read_tombstones(fs, directory, entry.tombstones, entry.rows)
                report.files_checked += 1
            if entry.documents:
                docs = DocumentsTable(directory, sid, entry.rows)
                docs.all()  # every document decodes (UTF-8)
                docs.close()
                report.files_checked += 1
            del ids
        except KeelError as exc:
            report.problems.append(f"{label}: segment {sid}: {exc}")
        if entry.kind == "hnsw":
            try:
                path = os.path.join(directory, segment_file_name(sid, "hnsw"))
                hnsw = HnswIndex.load(path, entry.rows, config.dim, config.metric)
                hnsw.verify_storage()
                report.files_checked += 1
                if hnsw.quantization != config.graph_quantization:
                    report.warnings.append(
                        f"{label}: segment {sid} graph keeps {hnsw.quantization} vectors, the "
                        f"collection asks {config.graph_quantization} (rebuilt at its next merge)"
                    )
            except KeelError as exc:
                report.problems.append(f"{label}: segment {sid} index (rebuildable on open): {exc}")
        for index in derived:
            try:
                index.check(fs, directory, entry)
                report.files_checked += int(entry.documents)
            except KeelError as exc:
                report.problems.append(
                    f"{label}: segment {sid} {index.name} index (rebuildable on open): {exc}"
                )
    referenced.update(_check_wal(fs, directory, label, manifest.checkpoint_seq, report))
    for name in os.listdir(directory):
        if name not in referenced and is_collection_file(name):
            report.warnings.append(f"{label}: unreferenced file {name} (removed on open)")


def _check_wal(
    fs: OsFileSystem, directory: str, label: str, checkpoint_seq: int, report: CheckReport
) -> list[str]:
    """Read every WAL file of a collection: records decode, no sequence gap past the
    checkpoint; a torn tail is a warning. Returns the WAL file names."""
    names: list[str] = []
    wal_files = list_wal_files(fs, directory)
    expected = None
    for i, (first, name) in enumerate(wal_files):
        path = os.path.join(directory, name)
        try:
            scan = read_wal(fs, path, first, is_last=i == len(wal_files) - 1, salvage=False)
            for record in scan.records:
                decode_batch(record.payload)
                if record.seq > checkpoint_seq:
                    if expected is not None and record.seq != expected:
                        report.problems.append(
                            f"{label}: WAL sequence gap before record {record.seq} in {name}"
                        )
                    expected = record.seq + 1
            if scan.torn_at is not None:
                report.warnings.append(
                    f"{label}: torn WAL tail in {name} at offset {scan.torn_at} (dropped on open)"
                )
            report.files_checked += 1
        except (KeelError, ValueError) as exc:
            report.problems.append(f"{label}: {exc}")
        names.append(name)
    return names
