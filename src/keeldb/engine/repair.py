"""``keeldb.repair``: rebuild damaged collections from every intact record that can be read.

Opening a damaged collection refuses it (``CorruptionError``), since answering from data
that failed verification could be wrong. Repair salvages what verifies, per file:

* **segments** — ids, metadata and tombstones must verify (their CRCs); a row's vector
  comes from the ``.vec`` file, or, when that is damaged, from the segment's HNSW graph
  (a float32 graph holds exact copies; a float16 graph of a cosine segment holds
  approximations: those ids are reported as ``approximate_ids``). Rows whose data
  cannot be read are lost and reported by id (``lost_ids``); rows whose ids themselves
  cannot be read are counted (``lost_unknown``).
* **the WAL** — records past the manifest's checkpoint are replayed in salvage mode:
  damaged records are skipped and reported (``wal_damage``); their ids are unknown.
* filter columns and graphs are derived data: rebuilt, never needed.

The repaired collection is written under a temporary name beside the original, sealed,
indexed and verified (every checksum) before anything else happens; only then is the
original directory moved to ``<database>/damaged/<workspace>/<name>-<time>/`` (kept, for
inspection; delete it when satisfied) and the repaired one renamed into place. A crash
at any point leaves the original untouched or already replaced whole. A collection
whose manifest is unreadable cannot be repaired (its configuration is lost): the report
says so and nothing changes.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from keeldb.engine.check import CheckReport, check_collection
from keeldb.engine.recovery import open_collection
from keeldb.engine.state import Options
from keeldb.errors import InvalidArgumentError, KeelError, NotFoundError
from keeldb.index.hnsw import HnswIndex
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import (
    MANIFEST_NAME,
    WORKSPACES_DIR,
    creating_dir_name,
    is_collection_dir_name,
    segment_file_name,
)
from keeldb.storage.lock import DirectoryLock
from keeldb.storage.manifest import Manifest, SegmentEntry, read_manifest, write_manifest
from keeldb.storage.records import DeleteOp, decode_batch
from keeldb.storage.segment_files import IdTable, MetadataTable, map_vectors, read_tombstones
from keeldb.storage.text_files import DocumentsTable
from keeldb.storage.wal import list_wal_files, read_wal

log = logging.getLogger("keeldb")

__all__ = ["RepairReport", "repair"]

DAMAGED_DIR = "damaged"
_BATCH = 4096

_Rows = dict[str, tuple[np.ndarray, dict[str, Any], str | None]]  # vector, metadata, document


@dataclass
class RepairReport:
    """What :func:`repair` did to one collection (``workspace/name``).

    ``status``: ``intact`` (nothing to do), ``repaired``, or ``failed`` (nothing changed;
    ``problems`` says why). ``recovered``: live records in the repaired collection.
    ``lost_ids``: ids whose record could not be recovered; ``lost_unknown``: rows lost
    with their ids unreadable; ``approximate_ids``: records whose vector came from a
    float16 graph; ``wal_damage``: damaged WAL regions skipped; ``damaged_copy``: where
    the original directory was moved.
    """

    collection: str
    status: str = "intact"
    recovered: int = 0
    lost_ids: list[str] = field(default_factory=list)
    lost_unknown: int = 0
    approximate_ids: list[str] = field(default_factory=list)
    wal_damage: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    damaged_copy: str | None = None
    wal_ids: list[str] = field(default_factory=list, repr=False)  # ids replayed from the WAL


def repair(
    path: str | os.PathLike[str],
    collection: str | None = None,
    *,
    workspace: str | None = None,
    force: bool = False,
) -> list[RepairReport]:
    """Repair the damaged collections of the database at ``path`` (not open elsewhere:
    ``DatabaseLockedError`` otherwise). ``collection`` / ``workspace`` restrict it to one
    collection or workspace; a collection that verifies is left alone unless ``force``
    (rebuild it anyway). Returns one report per collection considered (see the module
    docstring for what is salvaged and where the original goes)."""
    root = os.path.abspath(os.fspath(path))
    ws_root = os.path.join(root, WORKSPACES_DIR)
    if not os.path.isdir(ws_root):
        raise NotFoundError(f"no KeelDB database at {root}")
    lock = DirectoryLock(root)
    try:
        targets = _targets(ws_root, collection, workspace)
        if collection is not None and not targets:
            raise NotFoundError(f"collection {workspace or 'default'}/{collection} not found")
        return [_repair_one(root, ws, name, force) for ws, name in targets]
    finally:
        lock.release()


def _targets(ws_root: str, collection: str | None, workspace: str | None) -> list[tuple[str, str]]:
    if collection is not None and workspace is None:
        workspace = "default"
    out = []
    for ws in sorted(os.listdir(ws_root)):
        if workspace is not None and ws != workspace:
            continue
        ws_dir = os.path.join(ws_root, ws)
        if not os.path.isdir(ws_dir):
            continue
        for name in sorted(os.listdir(ws_dir)):
            if not is_collection_dir_name(name) or (collection is not None and name != collection):
                continue
            if os.path.isfile(os.path.join(ws_dir, name, MANIFEST_NAME)):
                out.append((ws, name))
    return out


def _repair_one(root: str, ws: str, name: str, force: bool) -> RepairReport:
    directory = os.path.join(root, WORKSPACES_DIR, ws, name)
    report = RepairReport(f"{ws}/{name}")
    checked = CheckReport(directory)
    check_collection(directory, report.collection, checked)
    if checked.ok and not force:
        return report
    report.problems.extend(checked.problems)
    fs = OsFileSystem()
    try:
        manifest = read_manifest(fs, directory)
    except KeelError as exc:
        report.status = "failed"
        report.problems.append(f"manifest unreadable, configuration lost: {exc}")
        return report
    rows: _Rows = {}
    for entry in manifest.segments:
        _salvage_segment(directory, manifest, entry, rows, report)
    _replay_wal(directory, manifest, rows, report)
    # An id lost from one unit may live on in a newer one (a later upsert); a vector read
    # approximately may have been replaced by an exact one from the WAL.
    report.lost_ids = sorted(set(report.lost_ids) - set(rows))
    replaced = set(report.wal_ids)
    report.approximate_ids = sorted(
        i for i in set(report.approximate_ids) if i in rows and i not in replaced
    )
    ws_dir = os.path.dirname(directory)
    tmp = os.path.join(ws_dir, creating_dir_name(name, uuid.uuid4().hex[:8]))
    try:
        _write_collection(tmp, manifest, rows)
        verified = CheckReport(tmp)
        check_collection(tmp, report.collection, verified)
        if not verified.ok:
            raise InvalidArgumentError(f"the repaired copy does not verify: {verified.problems}")
    except BaseException:
        fs.rmtree(tmp)
        raise
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    kept = os.path.join(root, DAMAGED_DIR, ws, f"{name}-{stamp}-{uuid.uuid4().hex[:4]}")
    fs.makedirs(os.path.dirname(kept))
    fs.rename(directory, kept)
    fs.rename(tmp, directory)
    fs.sync_dir(ws_dir)
    fs.sync_dir(os.path.dirname(kept))
    report.status = "repaired"
    report.recovered = len(rows)
    report.damaged_copy = kept
    log.warning(
        "keeldb: repaired %s: %d records, %d lost",
        report.collection,
        len(rows),
        len(report.lost_ids) + report.lost_unknown,
    )
    return report


def _salvage_segment(
    directory: str, manifest: Manifest, entry: SegmentEntry, rows: _Rows, report: RepairReport
) -> None:
    sid, n, dim = entry.segment_id, entry.rows, manifest.config.dim
    try:
        ids = IdTable(directory, sid, n).all_ids()
    except KeelError as exc:
        report.problems.append(f"segment {sid}: ids unreadable: {exc}")
        report.lost_unknown += n  # an upper bound: some of its rows may have been deleted
        return
    try:
        dead = (
            read_tombstones(OsFileSystem(), directory, entry.tombstones, n)
            if entry.tombstones
            else np.zeros(n, dtype=bool)
        )
    except KeelError as exc:
        # Which rows were deleted is unknown: restoring them could resurrect deletes.
        report.problems.append(f"segment {sid}: tombstones unreadable: {exc}")
        report.lost_ids.extend(ids)
        return
    live = [r for r in range(n) if not dead[r]]
    vectors, approximate = _segment_vectors(directory, sid, n, dim, manifest.config.metric, report)
    try:
        meta = MetadataTable(directory, sid, n)
        metas = [meta.at(r) for r in live]
    except KeelError as exc:
        report.problems.append(f"segment {sid}: metadata unreadable: {exc}")
        metas = None
    docs: list[str | None] | None = [None] * len(live)
    if entry.documents:
        try:
            table = DocumentsTable(directory, sid, n)
            docs = table.many(live)
            table.close()
        except KeelError as exc:
            report.problems.append(f"segment {sid}: documents unreadable: {exc}")
            docs = None
    if vectors is None or metas is None or docs is None:
        report.lost_ids.extend(ids[r] for r in live)
        return
    for r, md, doc in zip(live, metas, docs, strict=True):
        rows[ids[r]] = (np.array(vectors[r], dtype=np.float32), md, doc)
    if approximate:
        report.approximate_ids.extend(ids[r] for r in live)


def _segment_vectors(
    directory: str, sid: int, n: int, dim: int, metric: str, report: RepairReport
) -> tuple[np.ndarray | None, bool]:
    """A segment's vectors from ``.vec``, else from its graph; ``(vectors, approximate)``."""
    try:
        mapped = map_vectors(directory, sid, n, dim)
        mapped.verify()
        return mapped.array, False
    except KeelError as exc:
        report.problems.append(f"segment {sid}: vectors unreadable: {exc}")
    path = os.path.join(directory, segment_file_name(sid, "hnsw"))
    if not os.path.exists(path):
        return None, False
    try:
        hnsw = HnswIndex.load(path, n, dim, metric)
        hnsw.verify_storage()
        vectors = hnsw.decoded_vectors()
    except KeelError as exc:
        report.problems.append(f"segment {sid}: graph copy of the vectors unreadable: {exc}")
        return None, False
    return vectors, not hnsw.exact_scores


def _replay_wal(directory: str, manifest: Manifest, rows: _Rows, report: RepairReport) -> None:
    fs = OsFileSystem()
    files = list_wal_files(fs, directory)
    for i, (first, name) in enumerate(files):
        path = os.path.join(directory, name)
        try:
            scan = read_wal(fs, path, first, is_last=i == len(files) - 1, salvage=True)
        except KeelError as exc:
            report.wal_damage.append(f"{name}: unreadable: {exc}")
            continue
        if scan.salvaged_at is not None:
            report.wal_damage.append(f"{name}: damaged from offset {scan.salvaged_at}")
        for record in scan.records:
            if record.seq <= manifest.checkpoint_seq:
                continue
            try:
                batch = decode_batch(record.payload)
            except ValueError as exc:
                report.wal_damage.append(f"{name}: undecodable record {record.seq}: {exc}")
                continue
            for op in batch:
                if isinstance(op, DeleteOp):
                    for id_ in op.ids:
                        rows.pop(id_, None)
                    continue
                for j, id_ in enumerate(op.ids):
                    md = op.metadata[j]
                    if md is None:  # keep the existing record's metadata
                        md = rows[id_][1] if id_ in rows else {}
                    doc = None if op.documents is None else op.documents[j]
                    if doc is None:  # keep the existing record's document
                        doc = rows[id_][2] if id_ in rows else None
                    rows[id_] = (np.array(op.vectors[j], dtype=np.float32), md, doc)
                    report.wal_ids.append(id_)


def _write_collection(directory: str, manifest: Manifest, rows: _Rows) -> None:
    """Build a fresh collection with ``manifest``'s configuration holding ``rows``."""
    fs = OsFileSystem()
    fs.makedirs(directory)
    write_manifest(fs, directory, Manifest(1, manifest.config))
    col = open_collection(directory, Options(durability="none", background=False))
    try:
        ids = sorted(rows)
        for start in range(0, len(ids), _BATCH):
            chunk = ids[start : start + _BATCH]
            col.upsert(
                chunk,
                np.stack([rows[i][0] for i in chunk]),
                [rows[i][1] for i in chunk],
                documents=[rows[i][2] for i in chunk],
            )
        col.compact()
    finally:
        col.close()
