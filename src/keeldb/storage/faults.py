"""A fault-injecting :class:`~keeldb.storage.fileio.FileSystem` for crash and I/O-error tests.

After LevelDB's ``FaultInjectionTestEnv`` and SQLite's crash tests. It does real I/O under
one root directory and keeps, next to it, a model of what a power cut would leave behind:

* every file is an *inode* whose **durable content** is its content at its last successful
  fsync (nothing, if it was never fsynced);
* every directory is an inode whose **durable entries** are its ``name -> inode`` map at
  its last successful directory fsync. A created, renamed or removed file whose directory
  was not fsynced afterwards may revert.

A :class:`Fault` makes the N-th matching call (counted from :meth:`FaultyFileSystem.arm`)
either fail with ``EIO`` or ``ENOSPC`` (once, or that call and every later one), or
*crash*: the call raises :class:`SimulatedCrash` and the directory tree is replaced by what
survives, per the crash ``mode``:

``process``  a ``kill -9``: everything handed to the OS survives (the tree is left as is);
``power``    a power cut: unsynced data and unsynced directory entries are dropped;
``torn``     a power cut that keeps a random prefix of each file's unsynced appended bytes
             (and half of the interrupted write): the torn tails a disk really leaves.

After a crash every call raises :class:`SimulatedCrash` again, so code still holding the
dead database cannot touch the disk; open the directory again with a fresh file system.

A failed fsync models Linux: the kernel may mark the dirty pages clean anyway, so the bytes
that were unsynced then are zeros on disk after a power cut *even if a later fsync
succeeds* -- a writer that retries and carries on would lose data, which the tests catch.

Usage::

    fs = FaultyFileSystem(root)
    db = keeldb.open(os.path.join(root, "db"), fs=fs, background=False)
    fs.arm(Fault(nth=7))                   # crash (power cut) at the 7th mutating call
    try:
        col.upsert(...)
    except SimulatedCrash:
        fs.abandon(db)                     # release the dead process's lock
    db = keeldb.open(os.path.join(root, "db"))   # recover and verify

This module ships with the package so applications can test their own crash handling.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from keeldb.errors import translate_os_error
from keeldb.storage.fileio import AppendFile, FileSystem, OsFileSystem

__all__ = ["CRASH_MODES", "MUTATING_OPS", "Fault", "FaultyFileSystem", "SimulatedCrash"]

CRASH_MODES = ("process", "power", "torn")
# Kinds of calls counted by a fault (``read`` only when a fault names it explicitly).
MUTATING_OPS = frozenset(
    {"create", "write", "sync", "truncate", "rename", "remove", "mkdir", "sync_dir"}
)
ALL_OPS = MUTATING_OPS | {"read"}


class SimulatedCrash(BaseException):
    """Raised by the call at which a simulated crash happened, and by every call after it.

    A ``BaseException`` (like ``KeyboardInterrupt``) so that no ``except Exception`` in the
    engine or an application can swallow the crash and keep running.
    """


@dataclass(frozen=True)
class Fault:
    """What to do at the ``nth`` (1-based) call whose kind is in ``ops``.

    ``action``: ``crash``, ``eio`` or ``enospc``. ``persistent``: errors repeat for every
    later matching call (a dead disk) instead of once. ``mode``: see :data:`CRASH_MODES`.
    ``ops``: kinds from :data:`MUTATING_OPS` (plus ``read``); default every mutating call.
    """

    nth: int
    action: str = "crash"
    ops: frozenset[str] = MUTATING_OPS
    persistent: bool = False
    mode: str = "power"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.nth < 1:
            raise ValueError("nth counts from 1")
        if self.action not in ("crash", "eio", "enospc"):
            raise ValueError(f"unknown fault action {self.action!r}")
        if self.mode not in CRASH_MODES:
            raise ValueError(f"unknown crash mode {self.mode!r}")
        if not self.ops <= ALL_OPS:
            raise ValueError(f"unknown op kinds {set(self.ops - ALL_OPS)}")


@dataclass
class _Inode:
    is_dir: bool
    durable: bytes | None = None  # files: content at the last good fsync
    entries: dict[str, int] = field(default_factory=dict)  # dirs: durable name -> inode
    lost: list[tuple[int, int]] = field(default_factory=list)  # ranges a failed fsync lost


class FaultyFileSystem(FileSystem):
    """Real I/O under ``root`` plus a model of the durable state (see module docstring).

    Everything already under ``root`` when this is created counts as durable. Paths outside
    ``root`` are passed through unmodelled. ``calls`` counts mutating calls since the last
    :meth:`arm`; ``trace`` lists them as ``(kind, path)``.
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._os = OsFileSystem()
        self._inodes: dict[int, _Inode] = {}
        self._paths: dict[str, int] = {}  # current namespace under root: path -> inode
        self._next = 1
        self.calls = 0
        self._matched = 0
        self.trace: list[tuple[str, str]] = []
        self.fault: Fault | None = None
        self.crashed = False
        self.faults_fired = 0
        root_ino = self._new(is_dir=True)
        self._paths[self.root] = root_ino
        self._adopt(self.root)

    # --- the model ------------------------------------------------------------------------

    def _new(self, *, is_dir: bool) -> int:
        ino = self._next
        self._next += 1
        self._inodes[ino] = _Inode(is_dir)
        return ino

    def _adopt(self, directory: str) -> None:
        """Register the existing tree under ``directory`` as durable."""
        d_ino = self._paths[directory]
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            is_dir = os.path.isdir(path)
            ino = self._new(is_dir=is_dir)
            self._paths[path] = ino
            self._inodes[d_ino].entries[name] = ino
            if is_dir:
                self._adopt(path)
            else:
                with open(path, "rb") as f:
                    self._inodes[ino].durable = f.read()

    def _inside(self, path: str) -> str | None:
        p = os.path.abspath(path)
        return p if p == self.root or p.startswith(self.root + os.sep) else None

    def _subtree(self, path: str) -> list[str]:
        prefix = path + os.sep
        return [p for p in self._paths if p == path or p.startswith(prefix)]

    def _sync_file(self, path: str) -> None:
        p = self._inside(path)
        if p is None or p not in self._paths:
            return
        inode = self._inodes[self._paths[p]]
        with open(p, "rb") as f:
            data = bytearray(f.read())
        for start, end in inode.lost:  # pages a failed fsync let the kernel drop
            end = min(end, len(data))
            if start < end:
                data[start:end] = bytes(end - start)
        inode.durable = bytes(data)

    def _lose_unsynced(self, path: str) -> None:
        """A failed fsync: the unsynced bytes of ``path`` may never reach the disk."""
        p = self._inside(path)
        if p is None or p not in self._paths:
            return
        inode = self._inodes[self._paths[p]]
        start = len(inode.durable or b"")
        end = os.path.getsize(p)
        if end > start:
            inode.lost.append((start, end))

    # --- fault dispatch ---------------------------------------------------------------------

    def arm(self, fault: Fault | None) -> None:
        """Install ``fault`` (None: none) and restart the call count."""
        self.fault = fault
        self.calls = 0
        self._matched = 0
        self.trace = []

    def _io(self, kind: str, path: str, *, partial: Any = None) -> None:
        """Account one call; raise the armed fault if it fires here. ``partial(n_bytes)``
        performs part of an interrupted write (torn crashes, ENOSPC)."""
        if self.crashed:
            raise SimulatedCrash(f"the simulated machine is down ({kind} {path})")
        if kind in MUTATING_OPS:
            self.calls += 1
            self.trace.append((kind, path))
        fault = self.fault
        if fault is None or kind not in fault.ops:
            return
        self._matched += 1
        if self._matched < fault.nth or (self._matched > fault.nth and not fault.persistent):
            return
        self.faults_fired += 1
        if fault.action == "crash":
            if partial is not None and fault.mode in ("process", "torn"):
                partial(0.5)
            self._crash(fault)
            raise SimulatedCrash(
                f"simulated {fault.mode} crash at call {self.calls}: {kind} {path}"
            )
        code = errno.EIO if fault.action == "eio" else errno.ENOSPC
        if partial is not None and fault.action == "enospc":
            partial(0.5)  # a short write, then no space
        if kind == "sync":
            self._lose_unsynced(path)
        raise translate_os_error(OSError(code, os.strerror(code)), f"{kind} {path} (injected)")

    def _crash(self, fault: Fault) -> None:
        self.crashed = True
        if fault.mode == "process":
            return
        rng = random.Random(fault.seed)
        root_ino = self._paths[self.root]
        # What the disk holds after the cut, read before anything is changed.
        current: dict[int, bytes] = {}
        if fault.mode == "torn":
            for path, ino in self._paths.items():
                if not self._inodes[ino].is_dir and os.path.isfile(path):
                    with open(path, "rb") as f:
                        current[ino] = f.read()
        for name in os.listdir(self.root):
            path = os.path.join(self.root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        self._rebuild(self.root, root_ino, current, rng)

    def _rebuild(
        self, directory: str, d_ino: int, current: dict[int, bytes], rng: random.Random
    ) -> None:
        for name, ino in sorted(self._inodes[d_ino].entries.items()):
            path = os.path.join(directory, name)
            inode = self._inodes[ino]
            if inode.is_dir:
                os.mkdir(path)
                self._rebuild(path, ino, current, rng)
                continue
            data = inode.durable or b""
            now = current.get(ino)
            if now is not None and len(now) > len(data) and now.startswith(data) and not inode.lost:
                data = now[: len(data) + rng.randint(0, len(now) - len(data))]
            with open(path, "wb") as f:
                f.write(data)

    # --- the FileSystem interface ------------------------------------------------------------

    def open_append(self, path: str, *, create: bool) -> AppendFile:
        if create:
            self._io("create", path)
        elif self.crashed:
            raise SimulatedCrash("the simulated machine is down")
        f = self._os.open_append(path, create=create)
        p = self._inside(path)
        if create and p is not None:
            self._paths[p] = self._new(is_dir=False)
        return _FaultyAppendFile(self, f)

    def write_new(self, path: str, chunks: Iterable[bytes | memoryview]) -> None:
        self._io("create", path)
        data = b"".join(bytes(memoryview(c).cast("B")) for c in chunks)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except OSError as exc:
            raise translate_os_error(exc, f"create {path}") from exc
        p = self._inside(path)
        if p is not None:
            self._paths[p] = self._new(is_dir=False)
        try:

            def partial(fraction: float) -> None:
                os.write(fd, data[: int(len(data) * fraction)])

            self._io("write", path, partial=partial)
            os.write(fd, data)
            self._io("sync", path)
            os.fsync(fd)
        except OSError as exc:
            raise translate_os_error(exc, f"write {path}") from exc
        finally:
            os.close(fd)
        self._sync_file(path)

    def read_bytes(self, path: str) -> bytes:
        self._io("read", path)
        return self._os.read_bytes(path)

    def rename(self, src: str, dst: str) -> None:
        self._io("rename", src)
        self._os.rename(src, dst)
        s, d = self._inside(src), self._inside(dst)
        if s is None or d is None:
            return
        for p in self._subtree(d):
            del self._paths[p]
        for p in self._subtree(s):
            self._paths[d + p[len(s) :]] = self._paths.pop(p)

    def remove(self, path: str) -> None:
        self._io("remove", path)
        self._os.remove(path)
        p = self._inside(path)
        if p is not None:
            self._paths.pop(p, None)

    def rmtree(self, path: str) -> None:
        self._io("remove", path)
        self._os.rmtree(path)
        p = self._inside(path)
        if p is not None:
            for q in self._subtree(p):
                del self._paths[q]

    def makedirs(self, path: str) -> None:
        self._io("mkdir", path)
        p = self._inside(path)
        missing: list[str] = []
        if p is not None:
            q = p
            while q not in self._paths and q != self.root:
                missing.append(q)
                q = os.path.dirname(q)
        self._os.makedirs(path)
        for q in reversed(missing):
            self._paths[q] = self._new(is_dir=True)

    def sync_dir(self, path: str) -> None:
        self._io("sync_dir", path)
        self._os.sync_dir(path)
        p = self._inside(path)
        if p is None or p not in self._paths:
            return
        prefix = p + os.sep
        entries = {
            q[len(prefix) :]: ino
            for q, ino in self._paths.items()
            if q.startswith(prefix) and os.sep not in q[len(prefix) :]
        }
        self._inodes[self._paths[p]].entries = entries

    def listdir(self, path: str) -> list[str]:
        if self.crashed:
            raise SimulatedCrash("the simulated machine is down")
        return self._os.listdir(path)

    def exists(self, path: str) -> bool:
        if self.crashed:
            raise SimulatedCrash("the simulated machine is down")
        return self._os.exists(path)

    def size(self, path: str) -> int:
        if self.crashed:
            raise SimulatedCrash("the simulated machine is down")
        return self._os.size(path)

    # --- helpers for tests -------------------------------------------------------------------

    @staticmethod
    def abandon(db: Any) -> None:
        """Forget a database whose machine crashed: release its directory lock (as the
        kernel does when a process dies) without running any of its shutdown code."""
        db.abandon()


class _FaultyAppendFile:
    """An append-only file whose writes, fsyncs and truncations go through the faults."""

    def __init__(self, fs: FaultyFileSystem, inner: AppendFile) -> None:
        self._fs = fs
        self._inner = inner
        self.path = inner.path

    def write(self, data: bytes | memoryview) -> None:
        buf = bytes(memoryview(data).cast("B"))

        def partial(fraction: float) -> None:
            self._inner.write(buf[: int(len(buf) * fraction)])

        self._fs._io("write", self.path, partial=partial)
        self._inner.write(buf)

    def flush(self) -> None:
        self._inner.flush()

    def sync(self) -> None:
        self._fs._io("sync", self.path)
        self._inner.sync()
        self._fs._sync_file(self.path)

    def truncate(self, size: int) -> None:
        self._fs._io("truncate", self.path)
        self._inner.truncate(size)
        self._fs._sync_file(self.path)

    def close(self) -> None:
        # Closing a descriptor changes nothing on disk, so it is allowed even after a crash
        # (the dead process's descriptors are closed by its death).
        self._inner.close()
