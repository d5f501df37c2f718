"""The database directory lock: one owning process per directory (an OS ``flock``).

The lock file is ``<root>/LOCK``; it holds the owner's pid for humans (informational
only). The lock is released when its descriptor is closed, including by the kernel when
the process dies, so a crash never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import os

from keeldb.errors import DatabaseLockedError, translate_os_error
from keeldb.storage.format import LOCK_NAME

__all__ = ["DirectoryLock"]


class DirectoryLock:
    """An exclusive, non-blocking lock on a database directory.

    ``DirectoryLock(root)`` acquires it or raises :class:`DatabaseLockedError` (held by
    another process, or by another open ``Database`` in this one) or a translated
    ``StorageError``; :meth:`release` (idempotent) gives it back.
    """

    def __init__(self, root: str, *, write_pid: bool = True) -> None:
        self.path = os.path.join(root, LOCK_NAME)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise translate_os_error(exc, f"open {self.path}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DatabaseLockedError(
                f"database {root} is open in another process (or another Database object)"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise translate_os_error(exc, f"lock {self.path}") from exc
        if write_pid:
            try:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
            except OSError:
                pass  # the pid is informational only
        self._fd: int | None = fd

    def release(self) -> None:
        """Release the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
