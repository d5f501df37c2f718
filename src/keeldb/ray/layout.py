"""Where a sharded database keeps its shards, and the record that fixes their count.

Layout (``docs/format.md``, "Sharded databases")::

    <root>/shard-<i:04>/             an ordinary KeelDB database directory (keeldb.open)
    <root>/shard-<i:04>/SHARD        this shard's record (JSON text, see below)

On a cluster ``<root>`` is the same path on every host; each host holds only the shard
directories of the shards placed on it. The record is what refuses a reopen with another
shard count: routing is ``hash(id) mod count``, so a different count would look for ids
on the wrong shards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from keeldb.errors import CorruptionError, translate_os_error
from keeldb.ray.errors import ShardCountMismatchError
from keeldb.ray.routing import ROUTING

__all__ = ["RECORD_NAME", "ShardRecord", "check_or_write_record", "shard_directory"]

RECORD_NAME = "SHARD"
RECORD_FORMAT = 1


def shard_directory(root: str, index: int) -> str:
    """The directory of shard ``index`` under ``root``."""
    return os.path.join(root, f"shard-{index:04d}")


@dataclass(frozen=True, slots=True)
class ShardRecord:
    """The content of a shard's ``SHARD`` file."""

    shard: int
    shards: int
    routing: str = ROUTING
    format: int = RECORD_FORMAT

    def to_bytes(self) -> bytes:
        """One line of JSON, keys in a fixed order, newline-terminated."""
        body = {
            "format": self.format,
            "shard": self.shard,
            "shards": self.shards,
            "routing": self.routing,
        }
        return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _read(path: str) -> ShardRecord:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise translate_os_error(exc, f"read {path}") from exc
    try:
        body = json.loads(raw)
        record = ShardRecord(
            int(body["shard"]), int(body["shards"]), str(body["routing"]), int(body["format"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"unreadable shard record: {exc}", path=path) from exc
    if record.format != RECORD_FORMAT:
        raise CorruptionError(f"shard record format {record.format} is not known", path=path)
    return record


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".keeldb-tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        raise translate_os_error(exc, f"write {path}") from exc


def check_or_write_record(directory: str, shard: int, shards: int) -> ShardRecord:
    """Check the record in ``directory`` against (``shard``, ``shards``), or write it if
    the directory has none yet (a new shard). ``directory`` must exist.

    Raises :class:`ShardCountMismatchError` when the record names another count or index,
    :class:`CorruptionError` when it cannot be parsed, or routes ids another way.
    """
    path = os.path.join(directory, RECORD_NAME)
    if not os.path.exists(path):
        record = ShardRecord(shard, shards)
        _write_atomic(path, record.to_bytes())
        return record
    record = _read(path)
    if record.routing != ROUTING:
        raise CorruptionError(
            f"shard record routes ids with {record.routing!r}; this version knows {ROUTING!r}",
            path=path,
        )
    if record.shards != shards or record.shard != shard:
        raise ShardCountMismatchError(
            f"{directory} is shard {record.shard} of a database with {record.shards} "
            f"shards; it was opened as shard {shard} of {shards}. Reopen with "
            f"shards={record.shards}: the shard count of a database is fixed",
            shard=shard,
        )
    return record
