"""Online backup and restore of a whole database (``Database.backup``, ``keeldb.restore``).

A backup is an ordinary KeelDB database directory plus one file, ``BACKUP`` (framed, magic
``KEELBKUP``: ``docs/format.md``), written last, after every other file is durable and the
copy has passed :func:`keeldb.check`. A directory without it (a backup cut short by a
crash or kill -9) is refused by :func:`restore`.

Consistency while writers keep writing: for each collection, upkeep is held (no seal,
merge or checkpoint commits, so no file is removed or replaced — writes go on), every
acknowledged WAL record is made durable, and the copy takes the committed manifest, the
files it names (immutable once written: copied, or hard-linked with ``hard_links=True``
when the destination is on the same file system) and the WAL up to its last whole
record. Opening the copy replays that WAL like any recovery. So every write acknowledged
before ``backup`` was called is in the backup; writes acknowledged during it may or may
not be; none is half applied (one write is one WAL record). Collections are copied one
after another: the backup is consistent per collection, not across collections.

Single-file form: a ``dest`` ending in ``.tar`` is backed up into a temporary directory
beside it (``.<name>.backup-<hex>``), packed with :func:`keeldb.storage.archive.pack`
(which ends the archive with its ``BACKUP-COMPLETE`` marker and renames it into place
only when whole), and the temporary directory is removed. :func:`restore` treats a
``src`` that is a file as such an archive: it is extracted with
:func:`keeldb.storage.archive.safe_extract` (which refuses hostile and incomplete
archives) into a temporary directory beside ``dest`` and restored from there like a
directory backup (``BACKUP`` file and every checksum verified), then the temporary
directory is removed. The archive appears at ``dest`` only whole (pack writes
``dest.tmp-<hex>`` and renames it), so a kill -9 leaves no ``dest`` (restore of it
fails with NotFoundError), but it can leave the dot-named temporary directory and a
``dest.tmp-<hex>`` file behind: delete them.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from typing import TYPE_CHECKING, Any

import orjson

from keeldb.engine.check import check
from keeldb.errors import (
    AlreadyExistsError,
    CorruptionError,
    InvalidArgumentError,
    NotFoundError,
    translate_os_error,
)
from keeldb.storage import archive
from keeldb.storage.fileio import OsFileSystem
from keeldb.storage.format import BACKUP_NAME, MAGIC_BACKUP, MARKER_NAME, WORKSPACES_DIR
from keeldb.storage.framed import read_framed, write_framed
from keeldb.types import BackupReport

if TYPE_CHECKING:
    from keeldb.engine.database import Database

__all__ = ["BackupReport", "backup", "is_archive_name", "restore"]

_COPY_CHUNK = 8 << 20


def backup(db: Database, dest: str | os.PathLike[str], *, hard_links: bool = False) -> BackupReport:
    """Write a consistent copy of every collection of ``db`` to the new directory ``dest``
    (which must not exist, or be empty) while writers go on; see the module docstring.
    A ``dest`` ending in ``.tar`` (which must not exist) gets the single-file form.

    ``hard_links=True`` links the immutable files (segments, tombstones, closed WAL files)
    instead of copying them when ``dest`` is on the same file system: instant and free
    of space, but the backup then shares the source's disk blocks (no protection against
    damage to that disk). By default every byte is copied.

    Raises AlreadyExistsError when ``dest`` holds anything, CorruptionError when the copy
    fails verification (the source is never changed), StorageError on I/O failure. A
    failed backup leaves ``dest`` without its ``BACKUP`` file, so restore refuses it.
    """
    t0 = time.perf_counter()
    root = os.path.abspath(os.fspath(dest))
    if is_archive_name(root):
        return _backup_to_archive(db, root, hard_links=hard_links, t0=t0)
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise AlreadyExistsError(f"backup destination {root} exists and is not empty")
    if os.path.commonpath([root, db.path]) in (db.path, root):
        raise InvalidArgumentError("the backup destination cannot be inside the database")
    report = BackupReport(root)
    _makedirs(root)
    _copy_file(
        os.path.join(db.path, MARKER_NAME),
        os.path.join(root, MARKER_NAME),
        None,
        report,
        link=False,
    )
    for info in db.list_collections():
        col = db.get_collection(info.name, workspace=info.workspace)
        target = os.path.join(root, WORKSPACES_DIR, info.workspace, info.name)
        _makedirs(target)
        with col.pinned_files() as files:
            for name, length in files:
                _copy_file(
                    os.path.join(col.directory, name),
                    os.path.join(target, name),
                    length,
                    report,
                    link=hard_links,
                )
        _sync_dir(target)
        _sync_dir(os.path.dirname(target))
        report.collections.append(f"{info.workspace}/{info.name}")
    _sync_dir(os.path.join(root, WORKSPACES_DIR))
    _sync_dir(root)
    verified = check(root)
    if not verified.ok:
        raise CorruptionError(f"the backup in {root} failed verification: {verified.problems}")
    manifest = {
        "format": 1,
        "created_at": time.time(),
        "source": db.path,
        "collections": report.collections,
        "files": _file_list(root),
    }
    write_framed(
        OsFileSystem(), os.path.join(root, BACKUP_NAME), MAGIC_BACKUP, [orjson.dumps(manifest)]
    )
    report.seconds = time.perf_counter() - t0
    return report


def is_archive_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names the single-file (tar) form of a backup: it ends in ``.tar``."""
    return os.fspath(path).lower().endswith(".tar")


def _backup_to_archive(db: Database, tar_path: str, *, hard_links: bool, t0: float) -> BackupReport:
    """Back up into a temporary directory beside ``tar_path``, pack it, remove it."""
    if os.path.lexists(tar_path):
        raise AlreadyExistsError(f"backup destination {tar_path} already exists")
    parent = os.path.dirname(tar_path)
    if not os.path.isdir(parent):
        raise NotFoundError(f"directory {parent} does not exist")
    tmp = os.path.join(parent, f".{os.path.basename(tar_path)}.backup-{uuid.uuid4().hex[:8]}")
    try:
        inner = backup(db, tmp, hard_links=hard_links)
        summary = archive.pack(tmp, tar_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    assert summary.files >= inner.files  # the archive holds every file copied, and BACKUP
    # The same counts as the directory form: files and bytes copied from the database.
    report = BackupReport(tar_path, inner.collections, inner.files, inner.bytes)
    report.seconds = time.perf_counter() - t0
    return report


def read_backup_manifest(src: str) -> dict[str, Any]:
    """The verified ``BACKUP`` file of backup directory ``src``: NotFoundError when there
    is none (not a backup, or one cut short), CorruptionError when it is damaged or a file
    it lists is missing or has another size."""
    path = os.path.join(src, BACKUP_NAME)
    if not os.path.isfile(path):
        raise NotFoundError(
            f"{src} is not a complete KeelDB backup (no {BACKUP_NAME} file: the backup was "
            "interrupted, or this is not a backup)"
        )
    _, payload = read_framed(OsFileSystem(), path, MAGIC_BACKUP)
    try:
        doc = orjson.loads(payload)
        files = [(str(rel), int(size)) for rel, size in doc["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"backup manifest is invalid: {exc}", path=path) from exc
    for rel, size in files:
        full = os.path.join(src, rel)
        if os.path.normpath(rel).startswith(("..", "/")) or not os.path.isfile(full):
            raise CorruptionError(f"backup file {rel} is missing", path=src)
        if os.path.getsize(full) != size:
            raise CorruptionError(f"backup file {rel} has the wrong size", path=full)
    result: dict[str, Any] = doc
    return result


def restore(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> BackupReport:
    """Restore the backup directory ``src`` into the new directory ``dest`` (which must not
    exist). The files are copied into a temporary sibling, verified (every checksum), and
    renamed into place, so ``dest`` appears whole or not at all. Raises NotFoundError for
    an incomplete backup, CorruptionError when verification fails, AlreadyExistsError
    when ``dest`` exists.

    A ``src`` that is a file is read as the single-file (tar) form: safe-extracted into
    a temporary directory beside ``dest`` first (see the module docstring). A hostile or
    incomplete archive (absolute paths, ``..``, links, devices, oversized members, no
    ``BACKUP-COMPLETE`` marker) raises InvalidArgumentError, one whose bytes do not match
    its list CorruptionError, and nothing is left behind."""
    t0 = time.perf_counter()
    src_root = os.path.abspath(os.fspath(src))
    root = os.path.abspath(os.fspath(dest))
    if os.path.exists(root):
        raise AlreadyExistsError(f"restore destination {root} already exists")
    parent = os.path.dirname(root)
    if os.path.isfile(src_root):
        return _restore_from_archive(src_root, root, t0)
    doc = read_backup_manifest(src_root)
    _makedirs(parent)
    tmp = os.path.join(parent, f".keeldb-restoring-{uuid.uuid4().hex[:8]}")
    report = BackupReport(root, list(doc.get("collections", [])))
    try:
        for rel, _size in doc["files"]:
            target = os.path.join(tmp, rel)
            _makedirs(os.path.dirname(target))
            _copy_file(os.path.join(src_root, rel), target, None, report, link=False)
        for dirpath, _dirs, _files in os.walk(tmp, topdown=False):
            _sync_dir(dirpath)
        verified = check(tmp)
        if not verified.ok:
            raise CorruptionError(f"the restored copy failed verification: {verified.problems}")
        os.rename(tmp, root)
        _sync_dir(parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.seconds = time.perf_counter() - t0
    return report


def _restore_from_archive(tar_path: str, root: str, t0: float) -> BackupReport:
    parent = os.path.dirname(root)
    _makedirs(parent)
    tmp = os.path.join(parent, f".{os.path.basename(root)}.unpack-{uuid.uuid4().hex[:8]}")
    try:
        archive.safe_extract(tar_path, tmp)
        report = restore(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report


def _file_list(root: str) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            full = os.path.join(dirpath, name)
            out.append((os.path.relpath(full, root), os.path.getsize(full)))
    return sorted(out)


def _copy_file(src: str, dst: str, length: int | None, report: BackupReport, *, link: bool) -> None:
    """Copy ``src`` (its first ``length`` bytes, or all) to the new file ``dst``, durably.
    Whole immutable files are hard-linked when ``link`` and the file systems allow it."""
    try:
        if length is None and link:
            try:
                os.link(src, dst)
                report.files += 1
                report.bytes += os.path.getsize(dst)
                return
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
        remaining = os.path.getsize(src) if length is None else length
        with open(src, "rb") as fin, open(dst, "xb") as fout:
            while remaining > 0:
                chunk = fin.read(min(_COPY_CHUNK, remaining))
                if not chunk:
                    raise CorruptionError(f"{src} is shorter than expected", path=src)
                fout.write(chunk)
                remaining -= len(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        report.files += 1
        report.bytes += os.path.getsize(dst)
    except OSError as exc:
        raise translate_os_error(exc, f"copy {src} -> {dst}") from exc


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise translate_os_error(exc, f"create {path}") from exc


def _sync_dir(path: str) -> None:
    OsFileSystem().sync_dir(path)
