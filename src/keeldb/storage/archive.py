"""The single-file (tar) form of a backup: :func:`pack` a directory, :func:`safe_extract` it.

Layout (``docs/format.md``, "Backup archive"): a POSIX ustar/pax tar, uncompressed (a
``.tar.gz`` is read too), whose members are the directory's regular files and
subdirectories under relative paths, followed by one last regular-file member named
``BACKUP-COMPLETE``: UTF-8 JSON ::

    {"format": 1, "files": [{"path": "a/b", "size": 123, "sha256": "<64 hex>"}, ...]}

listing every file member with its size and SHA-256. The packer writes the marker only
after every file was copied, and writes the archive under a temporary name renamed into
place after an fsync, so an archive cut short (a crash, a full disk, a partial copy) has
no marker, or one whose list does not match, and is refused.

:func:`safe_extract` trusts nothing in the archive. It refuses (``InvalidArgumentError``)
absolute paths, ``..`` components, links (symbolic or hard), devices, FIFOs and any other
non-file, non-directory member, duplicate names, members larger than
``max_member_bytes`` or archives larger than ``max_total_bytes`` in total, more than
``max_members`` members, and a missing, misplaced or malformed ``BACKUP-COMPLETE``. A file
whose size or checksum differs from the marker's list raises ``CorruptionError``. It
writes into a new temporary directory next to ``dest`` (files created exclusively,
never through a link) and renames it to ``dest`` only when every check passed, so
``dest`` either appears complete or not at all.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import uuid
from dataclasses import dataclass
from typing import IO, Any

import orjson

from keeldb.errors import CorruptionError, InvalidArgumentError

__all__ = [
    "COMPLETE_MARKER",
    "MAX_MEMBERS",
    "MAX_MEMBER_BYTES",
    "MAX_TOTAL_BYTES",
    "ArchiveSummary",
    "pack",
    "safe_extract",
]

COMPLETE_MARKER = "BACKUP-COMPLETE"
ARCHIVE_FORMAT = 1
# Default limits of safe_extract (each can be passed explicitly). A member is one file of
# a database (the largest are .vec files: 1M x 384 float32 is 1.5 GiB).
MAX_MEMBER_BYTES = 64 << 30
MAX_TOTAL_BYTES = 1 << 40
MAX_MEMBERS = 1_000_000
_MAX_MARKER_BYTES = 256 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ArchiveSummary:
    """What :func:`pack` wrote or :func:`safe_extract` restored: regular files and their
    total size in bytes (the marker excluded)."""

    files: int
    size_bytes: int


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _walk_source(directory: str) -> tuple[list[str], list[str]]:
    """Relative directory and file paths under ``directory``, sorted; refuses anything
    but regular files and directories (a backup holds nothing else)."""
    dirs: list[str] = []
    files: list[str] = []
    for root, subdirs, names in os.walk(directory):
        subdirs.sort()
        rel_root = os.path.relpath(root, directory)
        for name in [*subdirs, *sorted(names)]:
            full = os.path.join(root, name)
            rel = os.path.normpath(os.path.join(rel_root, name)).replace(os.sep, "/")
            if rel == COMPLETE_MARKER:
                raise InvalidArgumentError(f"{full}: the name {COMPLETE_MARKER} is reserved")
            if os.path.islink(full):
                raise InvalidArgumentError(f"{full} is a symbolic link; pack copies no links")
            if os.path.isdir(full):
                dirs.append(rel)
            elif os.path.isfile(full):
                files.append(rel)
            else:
                raise InvalidArgumentError(f"{full} is not a regular file or directory")
    return dirs, files


def _add_file(tar: tarfile.TarFile, full: str, rel: str) -> dict[str, Any]:
    """Add one file, hashing exactly the bytes written (the file may not change size)."""
    with open(full, "rb") as f:
        st = os.fstat(f.fileno())
        info = tarfile.TarInfo(rel)
        info.size, info.mode, info.mtime = st.st_size, 0o644, int(st.st_mtime)
        digest = hashlib.sha256()

        class _Hashing:
            def read(self, n: int = -1) -> bytes:
                data = f.read(n)
                digest.update(data)
                return data

        tar.addfile(info, _Hashing())
        if f.read(1):
            raise InvalidArgumentError(f"{full} grew while it was being packed")
    return {"path": rel, "size": st.st_size, "sha256": digest.hexdigest()}


def pack(directory: str | os.PathLike[str], tar_path: str | os.PathLike[str]) -> ArchiveSummary:
    """Write ``directory`` (regular files and subdirectories only) to the tar file
    ``tar_path``, ending with the ``BACKUP-COMPLETE`` marker; atomic (temporary file,
    fsync, rename). The directory must not change meanwhile (pack a finished backup).

    Raises :class:`InvalidArgumentError` when ``directory`` is not a directory, holds a
    link, device or FIFO, or a file named ``BACKUP-COMPLETE``, or ``tar_path`` exists.
    """
    src, target = os.fspath(directory), os.fspath(tar_path)
    if not os.path.isdir(src):
        raise InvalidArgumentError(f"{src} is not a directory")
    if os.path.lexists(target):
        raise InvalidArgumentError(f"{target} already exists; pack never overwrites")
    dirs, files = _walk_source(src)
    tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
    listed: list[dict[str, Any]] = []
    try:
        with open(tmp, "xb") as out:
            with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for rel in dirs:
                    info = tarfile.TarInfo(rel)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
                for rel in files:
                    listed.append(_add_file(tar, os.path.join(src, rel), rel))
                marker = orjson.dumps({"format": ARCHIVE_FORMAT, "files": listed})
                info = tarfile.TarInfo(COMPLETE_MARKER)
                info.size, info.mode = len(marker), 0o644
                tar.addfile(info, _BytesReader(marker))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        _fsync_dir(os.path.dirname(os.path.abspath(target)))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return ArchiveSummary(len(listed), sum(e["size"] for e in listed))


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk


def _member_path(member: tarfile.TarInfo) -> str:
    """The member's normalised relative path; refuses absolute and escaping names."""
    name = member.name
    if not name or "\x00" in name or "\\" in name:
        raise InvalidArgumentError(f"archive member {name!r}: not a plain relative path")
    if name.startswith("/") or posixpath.isabs(name):
        raise InvalidArgumentError(f"archive member {name!r}: absolute paths are refused")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgumentError(f"archive member {name!r}: '..' components are refused")
    if not parts:
        raise InvalidArgumentError(f"archive member {name!r}: empty path")
    return "/".join(parts)


def _check_members(
    members: list[tarfile.TarInfo], max_member_bytes: int, max_total_bytes: int
) -> tuple[list[tuple[str, tarfile.TarInfo]], tarfile.TarInfo]:
    """Validate every header (before anything is written); returns the (path, member)
    pairs in order and the marker member, which must come last."""
    if not members or members[-1].name != COMPLETE_MARKER or not members[-1].isreg():
        raise InvalidArgumentError(
            f"archive has no {COMPLETE_MARKER} marker as its last member: the backup is "
            "incomplete (interrupted or cut short) and is refused"
        )
    seen: set[str] = set()
    out: list[tuple[str, tarfile.TarInfo]] = []
    total = 0
    for member in members[:-1]:
        path = _member_path(member)
        if member.issym() or member.islnk():
            raise InvalidArgumentError(f"archive member {path!r}: links are refused")
        if not (member.isreg() or member.isdir()):
            raise InvalidArgumentError(
                f"archive member {path!r}: only regular files and directories are allowed "
                "(devices, FIFOs and other special files are refused)"
            )
        if path in seen or path == COMPLETE_MARKER:
            raise InvalidArgumentError(f"archive member {path!r} appears more than once")
        seen.add(path)
        if member.size > max_member_bytes:
            raise InvalidArgumentError(
                f"archive member {path!r} is {member.size:,} bytes, over the limit of "
                f"{max_member_bytes:,} (max_member_bytes)"
            )
        total += member.size
        if total > max_total_bytes:
            raise InvalidArgumentError(
                f"archive holds more than {max_total_bytes:,} bytes (max_total_bytes)"
            )
        out.append((path, member))
    marker = members[-1]
    if marker.size > _MAX_MARKER_BYTES:
        raise InvalidArgumentError(f"{COMPLETE_MARKER} is {marker.size:,} bytes: malformed")
    return out, marker


def _read_marker(tar: tarfile.TarFile, marker: tarfile.TarInfo) -> dict[str, tuple[int, str]]:
    """The marker's file list as {path: (size, sha256)}; InvalidArgumentError if malformed."""
    f = tar.extractfile(marker)
    assert f is not None  # a regular file
    try:
        doc = orjson.loads(f.read())
        if doc.get("format") != ARCHIVE_FORMAT:
            raise ValueError(f"unknown format {doc.get('format')!r}")
        listed: dict[str, tuple[int, str]] = {}
        for entry in doc["files"]:
            path, size, sha = entry["path"], entry["size"], entry["sha256"]
            if not (isinstance(path, str) and isinstance(size, int) and isinstance(sha, str)):
                raise ValueError(f"bad entry {entry!r}")
            listed[path] = (size, sha)
    except (ValueError, KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"{COMPLETE_MARKER} is malformed: {exc}") from exc
    return listed


def _copy_member(src: IO[bytes], dest_path: str, size: int) -> str:
    """Stream one member into a new file (never through a link); returns its SHA-256."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(dest_path, flags, 0o644)
    digest = hashlib.sha256()
    written = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := src.read(_CHUNK):
            written += len(chunk)
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    if written != size:
        raise CorruptionError(f"{dest_path}: archive member is truncated")
    return digest.hexdigest()


def _open_tar(path: str) -> tarfile.TarFile:
    try:
        return tarfile.open(path, mode="r:*")
    except FileNotFoundError as exc:
        raise InvalidArgumentError(f"{path}: no such archive") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgumentError(f"{path} is not a readable tar archive: {exc}") from exc


def safe_extract(
    tar_path: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_MEMBERS,
) -> ArchiveSummary:
    """Extract an archive written by :func:`pack` into the new directory ``dest``.

    Every header is checked before anything is written, every file's size and SHA-256
    against the ``BACKUP-COMPLETE`` list while it is written; ``dest`` appears (by
    rename) only when all passed. Raises :class:`InvalidArgumentError` for a hostile or
    incomplete archive, an existing ``dest`` or a missing parent directory, and
    :class:`CorruptionError` when a file's bytes do not match the list or the archive
    is truncated. The module docstring lists every refusal.
    """
    src, target = os.fspath(tar_path), os.fspath(dest)
    if os.path.lexists(target):
        raise InvalidArgumentError(f"{target} already exists; extract into a new directory")
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        raise InvalidArgumentError(f"directory {parent} does not exist")
    with _open_tar(src) as tar:
        members = _read_headers(tar, src, max_members)
        checked, marker = _check_members(members, max_member_bytes, max_total_bytes)
        listed = _read_marker(tar, marker)
        files = {path for path, m in checked if m.isreg()}
        if files != set(listed):
            extra, missing = sorted(files - set(listed)), sorted(set(listed) - files)
            raise InvalidArgumentError(
                f"archive members disagree with {COMPLETE_MARKER}: not listed {extra[:5]}, "
                f"missing {missing[:5]}"
            )
        tmp = os.path.join(parent, f".{os.path.basename(target)}.extract-{uuid.uuid4().hex[:8]}")
        os.mkdir(tmp, 0o755)
        try:
            total = _write_members(tar, checked, listed, tmp)
            _fsync_tree(tmp)
            os.rename(tmp, target)
            _fsync_dir(parent)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return ArchiveSummary(len(files), total)


def _read_headers(tar: tarfile.TarFile, path: str, max_members: int) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    try:
        while (member := tar.next()) is not None:
            members.append(member)
            if len(members) > max_members + 1:
                raise InvalidArgumentError(
                    f"{path} has more than {max_members:,} members (max_members)"
                )
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CorruptionError(f"{path} is damaged or truncated: {exc}") from exc
    return members


def _write_members(
    tar: tarfile.TarFile,
    checked: list[tuple[str, tarfile.TarInfo]],
    listed: dict[str, tuple[int, str]],
    root: str,
) -> int:
    total = 0
    for path, member in checked:
        local = os.path.join(root, *path.split("/"))
        try:
            if member.isdir():
                os.makedirs(local, 0o755, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(local), 0o755, exist_ok=True)
        except OSError as exc:  # "a" as a file and "a/b" as well: nothing escapes root
            raise InvalidArgumentError(f"archive member {path!r} conflicts: {exc}") from exc
        size, sha = listed[path]
        if member.size != size:
            raise CorruptionError(f"archive member {path!r}: {member.size} bytes, listed {size}")
        f = tar.extractfile(member)
        assert f is not None
        try:
            got = _copy_member(f, local, size)
        except (tarfile.TarError, EOFError) as exc:
            raise CorruptionError(f"archive member {path!r} is truncated: {exc}") from exc
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise InvalidArgumentError(f"archive member {path!r} conflicts: {exc}") from exc
        if got != sha:
            raise CorruptionError(f"archive member {path!r}: SHA-256 differs from the list")
        total += size
    return total


def _fsync_tree(root: str) -> None:
    """Make the extracted directory entries durable before the rename publishes them."""
    for current, _, _ in os.walk(root, topdown=False):
        _fsync_dir(current)
