"""The public surface changes only on purpose: keeldb.__all__ is asserted here."""

from __future__ import annotations

import keeldb
from keeldb import errors

EXPECTED = [
    "AlreadyExistsError",
    "AsyncClient",
    "AuthError",
    "BackupReport",
    "BusyError",
    "CheckReport",
    "Client",
    "ClosedError",
    "Collection",
    "CollectionInfo",
    "CollectionNotFoundError",
    "CollectionStats",
    "CompactionReport",
    "CorruptionError",
    "Database",
    "DatabaseLockedError",
    "DimensionMismatchError",
    "Hit",
    "InsertStats",
    "InvalidArgumentError",
    "KeelError",
    "NotFoundError",
    "Page",
    "PartBytes",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "Record",
    "RemoteError",
    "RepairReport",
    "SearchStats",
    "SegmentStats",
    "StorageError",
    "Transaction",
    "check",
    "open",
    "repair",
    "restore",
    "set_search_threads",
]


def test_all_is_sorted_and_stable() -> None:
    assert keeldb.__all__ == sorted(keeldb.__all__)
    assert keeldb.__all__ == EXPECTED
    for name in keeldb.__all__:
        assert getattr(keeldb, name) is not None


def test_error_codes_are_unique_and_round_trip() -> None:
    classes = errors.error_classes()
    assert len(set(classes)) == len(classes)
    for code, cls in classes.items():
        rebuilt = errors.error_from_code(code, "message")
        assert type(rebuilt) is cls and rebuilt.code == code and str(rebuilt) == "message"
        assert 400 <= cls.status <= 599
    unknown = errors.error_from_code("no_such_code", "x")
    assert isinstance(unknown, errors.RemoteError)


def test_error_tree_shape() -> None:
    assert issubclass(errors.InvalidArgumentError, ValueError)
    assert issubclass(errors.DimensionMismatchError, errors.InvalidArgumentError)
    assert issubclass(errors.CollectionNotFoundError, errors.NotFoundError)
    assert issubclass(errors.CorruptionError, errors.StorageError)
    assert issubclass(errors.PermissionDeniedError, errors.AuthError)
    for cls in errors.error_classes().values():
        assert issubclass(cls, errors.KeelError)
        assert cls.__doc__, f"{cls.__name__} must say when it is raised"
