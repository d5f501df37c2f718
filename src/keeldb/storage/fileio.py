"""The file-system seam: every storage write, fsync, rename, removal and directory sync.

All of KeelDB's storage goes through a :class:`FileSystem` so that tests can swap in a
fault-injecting one (drop unsynced data, tear the last write, fail the N-th call with EIO
or ENOSPC). Reads of immutable files go through it too, except memory maps, which the OS
serves straight from the file (their content is verified by checksum instead).

Errors: every method raises :class:`~keeldb.errors.StorageError` (translated from
``OSError`` with ``raise ... from``), never a bare ``OSError``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from typing import Protocol

from keeldb.errors import translate_os_error

__all__ = ["AppendFile", "FileSystem", "OsFileSystem", "atomic_write"]


class AppendFile(Protocol):
    """A file opened for appending (the WAL)."""

    path: str

    def write(self, data: bytes | memoryview) -> None: ...
    def flush(self) -> None: ...
    def sync(self) -> None: ...
    def truncate(self, size: int) -> None: ...
    def close(self) -> None: ...


class FileSystem:
    """Interface of the seam; :class:`OsFileSystem` is the real implementation."""

    def open_append(self, path: str, *, create: bool) -> AppendFile:
        """Open ``path`` for appending (creating it if ``create``)."""
        raise NotImplementedError

    def write_new(self, path: str, chunks: Iterable[bytes | memoryview]) -> None:
        """Create ``path`` (must not exist), write ``chunks`` and fsync it."""
        raise NotImplementedError

    def read_bytes(self, path: str) -> bytes:
        """The whole content of ``path``."""
        raise NotImplementedError

    def rename(self, src: str, dst: str) -> None:
        """Atomically rename ``src`` to ``dst`` (replacing ``dst``)."""
        raise NotImplementedError

    def remove(self, path: str) -> None:
        """Remove a file; a missing file is not an error."""
        raise NotImplementedError

    def rmtree(self, path: str) -> None:
        """Remove a directory tree; a missing one is not an error."""
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        """Create a directory (and parents); an existing one is fine."""
        raise NotImplementedError

    def sync_dir(self, path: str) -> None:
        """fsync a directory so that creations, renames and removals in it are durable."""
        raise NotImplementedError

    def listdir(self, path: str) -> list[str]:
        """Names in a directory (sorted)."""
        raise NotImplementedError

    def exists(self, path: str) -> bool:
        raise NotImplementedError

    def size(self, path: str) -> int:
        raise NotImplementedError


class _OsAppendFile:
    def __init__(self, path: str, create: bool) -> None:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if create else 0)
        self.path = path
        try:
            self._fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise translate_os_error(exc, f"open {path}") from exc

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise translate_os_error(exc, f"write {self.path}") from exc

    def flush(self) -> None:
        """Nothing is buffered in user space: ``write`` already hands data to the OS."""

    def sync(self) -> None:
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            raise translate_os_error(exc, f"fsync {self.path}") from exc

    def truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            raise translate_os_error(exc, f"truncate {self.path}") from exc

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            try:
                os.close(fd)
            except OSError as exc:
                raise translate_os_error(exc, f"close {self.path}") from exc


class OsFileSystem(FileSystem):
    """The real file system (POSIX)."""

    def open_append(self, path: str, *, create: bool) -> AppendFile:
        return _OsAppendFile(path, create)

    def write_new(self, path: str, chunks: Iterable[bytes | memoryview]) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise translate_os_error(exc, f"create {path}") from exc
        try:
            for chunk in chunks:
                view = memoryview(chunk).cast("B")
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
            os.fsync(fd)
        except OSError as exc:
            raise translate_os_error(exc, f"write {path}") from exc
        finally:
            os.close(fd)

    def read_bytes(self, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as exc:
            raise translate_os_error(exc, f"read {path}") from exc

    def rename(self, src: str, dst: str) -> None:
        try:
            os.replace(src, dst)
        except OSError as exc:
            raise translate_os_error(exc, f"rename {src} -> {dst}") from exc

    def remove(self, path: str) -> None:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise translate_os_error(exc, f"remove {path}") from exc

    def rmtree(self, path: str) -> None:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise translate_os_error(exc, f"remove tree {path}") from exc

    def makedirs(self, path: str) -> None:
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise translate_os_error(exc, f"mkdir {path}") from exc

    def sync_dir(self, path: str) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise translate_os_error(exc, f"open dir {path}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise translate_os_error(exc, f"fsync dir {path}") from exc
        finally:
            os.close(fd)

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError as exc:
            raise translate_os_error(exc, f"list {path}") from exc

    def exists(self, path: str) -> bool:
        return os.path.exists(path)

    def size(self, path: str) -> int:
        try:
            return os.path.getsize(path)
        except OSError as exc:
            raise translate_os_error(exc, f"stat {path}") from exc


def atomic_write(fs: FileSystem, path: str, chunks: Iterable[bytes | memoryview]) -> None:
    """Replace ``path`` atomically: write a temporary file, fsync, rename, fsync the dir.

    After a crash at any point ``path`` holds either its old or its new content, never a
    mix; a leftover temporary file is removed by the next open.
    """
    from keeldb.storage.format import TMP_SUFFIX

    tmp = path + TMP_SUFFIX
    fs.remove(tmp)
    fs.write_new(tmp, chunks)
    fs.rename(tmp, path)
    fs.sync_dir(os.path.dirname(path) or ".")
