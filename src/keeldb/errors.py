"""KeelDB's one exception tree.

::

    KeelError
    ├── InvalidArgumentError (also ValueError)        400 invalid_argument
    │   └── DimensionMismatchError                      400 dimension_mismatch
    ├── NotFoundError (also KeyError)                 404 not_found
    │   └── CollectionNotFoundError                     404 collection_not_found
    ├── AlreadyExistsError                            409 already_exists
    ├── PayloadTooLargeError                          413 payload_too_large
    ├── DatabaseLockedError                           423 database_locked
    ├── ClosedError                                   409 closed
    ├── BusyError                                     503 busy
    ├── StorageError (also OSError-like)              500 storage_error
    │   └── CorruptionError                             500 corruption
    ├── AuthError                                     401 unauthorized
    │   └── PermissionDeniedError                       403 permission_denied
    └── RemoteError                                   502 remote_error

Every class carries a stable ``code`` (the wire name) and an HTTP ``status``. The
registry from code to class is filled automatically by ``__init_subclass__`` so the server
and the client can never drift apart: the server sends ``{"error": code, "message": ...}``
and the client rebuilds the same class with :func:`error_from_code`.

Foreign exceptions (``OSError``, faiss ``RuntimeError``) are translated at the edge of the
storage layer with ``raise ... from exc`` (see :func:`translate_os_error`).
"""

from __future__ import annotations

import errno
from typing import Any, ClassVar

__all__ = [
    "AlreadyExistsError",
    "AuthError",
    "BusyError",
    "ClosedError",
    "CollectionNotFoundError",
    "CorruptionError",
    "DatabaseLockedError",
    "DimensionMismatchError",
    "InvalidArgumentError",
    "KeelError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "RemoteError",
    "StorageError",
    "error_from_code",
    "translate_os_error",
]

_REGISTRY: dict[str, type[KeelError]] = {}


class KeelError(Exception):
    """Base of every error KeelDB raises on purpose.

    ``code`` is a stable machine-readable name; ``status`` the HTTP status the server maps
    it to. ``message`` is the human-readable text (also ``str(exc)``).
    """

    code: ClassVar[str] = "keel_error"
    status: ClassVar[int] = 500

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        code = cls.__dict__.get("code")
        if code is not None:
            if code in _REGISTRY and _REGISTRY[code] is not cls:
                raise TypeError(f"duplicate error code {code!r}")
            _REGISTRY[code] = cls

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        """The wire form: ``{"error": code, "message": message}``."""
        return {"error": self.code, "message": self.message}


_REGISTRY[KeelError.code] = KeelError


class InvalidArgumentError(KeelError, ValueError):
    """An argument is malformed: bad name, id, vector, metadata, filter or parameter.

    The message names the offending item (its index in a batch, or its path in a filter).
    Raised before anything is logged or applied, so the database is unchanged.
    """

    code = "invalid_argument"
    status = 400


class DimensionMismatchError(InvalidArgumentError):
    """A vector's length differs from the collection's ``dim``."""

    code = "dimension_mismatch"
    status = 400


class NotFoundError(KeelError, KeyError):
    """A named thing (workspace, collection, record) does not exist."""

    code = "not_found"
    status = 404

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class CollectionNotFoundError(NotFoundError):
    """``get_collection`` / ``drop_collection`` named a collection that does not exist."""

    code = "collection_not_found"
    status = 404


class AlreadyExistsError(KeelError):
    """``create_collection`` named an existing collection and ``exist_ok`` was false, or
    ``exist_ok`` was true but the existing collection's parameters differ."""

    code = "already_exists"
    status = 409


class PayloadTooLargeError(KeelError):
    """A request exceeds a configured size limit (server side)."""

    code = "payload_too_large"
    status = 413


class DatabaseLockedError(KeelError):
    """Another process holds the database directory's writer lock."""

    code = "database_locked"
    status = 423


class ClosedError(KeelError):
    """The database or collection was closed (or dropped) and cannot be used any more."""

    code = "closed"
    status = 409


class BusyError(KeelError):
    """A write waited longer than its timeout for a compaction or seal to finish."""

    code = "busy"
    status = 503


class StorageError(KeelError):
    """The file system failed (EIO, ENOSPC, permission ...), or a previous fsync failed and
    the collection refuses writes until it is reopened."""

    code = "storage_error"
    status = 500


class CorruptionError(StorageError):
    """A file failed verification (magic, version, length or checksum). The message names
    the file and the byte offset where the damage was found."""

    code = "corruption"
    status = 500

    def __init__(self, message: str = "", *, path: str | None = None, offset: int | None = None):
        parts = [message]
        if path is not None:
            parts.append(f"file={path}")
        if offset is not None:
            parts.append(f"offset={offset}")
        super().__init__(" ".join(p for p in parts if p))
        self.path = path
        self.offset = offset


class AuthError(KeelError):
    """No API key, or an unknown one (HTTP 401)."""

    code = "unauthorized"
    status = 401


class PermissionDeniedError(AuthError):
    """A valid API key whose role or workspaces do not allow the request (HTTP 403)."""

    code = "permission_denied"
    status = 403


class RemoteError(KeelError):
    """The server answered with something that is not a KeelDB error (client side)."""

    code = "remote_error"
    status = 502


def error_from_code(code: str, message: str) -> KeelError:
    """Rebuild the exception class registered under ``code`` (``RemoteError`` if unknown)."""
    cls = _REGISTRY.get(code)
    if cls is None:
        return RemoteError(f"{code}: {message}")
    if issubclass(cls, CorruptionError):
        return cls(message)
    return cls(message)


def error_classes() -> dict[str, type[KeelError]]:
    """A copy of the code → class registry (for the server's handler and tests)."""
    return dict(_REGISTRY)


def translate_os_error(exc: OSError, what: str) -> StorageError:
    """Turn an ``OSError`` raised while doing ``what`` into a :class:`StorageError`.

    The caller raises the result ``from exc``.
    """
    name = errno.errorcode.get(exc.errno or 0, "EIO")
    return StorageError(f"{what}: {name}: {exc.strerror or exc}")
