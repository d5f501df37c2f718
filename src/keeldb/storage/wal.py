"""The write-ahead log: :class:`WalWriter` appends records, :func:`read_wal` replays them.

A collection's WAL is a sequence of files ``wal-<first_seq>.log``, each a 64-byte framed
header (magic ``KEELWAL``, ``aux`` = first sequence number) followed by records (layout in
:mod:`keeldb.storage.format`). Sequence numbers rise by one per record across files.

Crash reasoning (after LevelDB's log reader):

* A record cut short or failing its CRC at the end of the *last* file, with no valid record
  after it, is the writer dying mid-append: the record was never acknowledged, so it is
  dropped, reported, and the file truncated back to its last good record.
* The same damage followed by a valid later record, or damage in an earlier file, means
  acknowledged data was hit: that is a :class:`CorruptionError` (naming file and offset),
  unless the caller asked to salvage, in which case the damaged file's remainder is
  skipped and reported.
* The length field itself may be corrupt, so after damage the reader looks for the next
  valid record by its expected sequence number, never by trusting the length.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from keeldb.errors import CorruptionError, StorageError
from keeldb.storage.fileio import AppendFile, FileSystem
from keeldb.storage.format import (
    FORMAT_VERSION,
    HEADER_SIZE,
    MAGIC_WAL,
    MAX_WAL_RECORD_BYTES,
    WAL_RECORD_BATCH,
    WAL_RECORD_HEADER,
    WAL_RECORD_HEADER_SIZE,
    parse_wal_name,
    wal_name,
)
from keeldb.storage.framed import FrameHeader, crc32c, pack_header, unpack_header

__all__ = ["WalRecord", "WalScan", "WalWriter", "list_wal_files", "read_wal"]


def list_wal_files(fs: FileSystem, directory: str) -> list[tuple[int, str]]:
    """The WAL files of a collection directory as ``(first_seq, name)``, oldest first."""
    return sorted(
        (first, name)
        for name in fs.listdir(directory)
        if (first := parse_wal_name(name)) is not None
    )


def _record_bytes(seq: int, payload: Sequence[bytes | memoryview]) -> bytes:
    body = b"".join(payload)
    head = WAL_RECORD_HEADER.pack(0, len(body), WAL_RECORD_BATCH, seq)
    crc = crc32c(body, crc32c(head[4:]))
    return crc.to_bytes(4, "little") + head[4:] + body


class WalWriter:
    """Appends records to one WAL file, with group commit for ``fsync`` durability.

    ``append`` is called with the collection's write lock held (records go in sequence
    order); ``sync_to`` is called after releasing it, so concurrent writers share one
    fsync: whoever syncs covers everything appended before the sync began.

    After any failed write or fsync the writer is *poisoned*: every later call raises
    StorageError, because the kernel may have dropped the dirty pages and retrying could
    pretend durability that does not exist. The collection must be reopened.
    """

    def __init__(self, fs: FileSystem, directory: str, first_seq: int) -> None:
        self.fs = fs
        self.first_seq = first_seq
        self.path = os.path.join(directory, wal_name(first_seq))
        self._sync_lock = threading.Lock()
        self._written = 0
        self._synced = 0
        self._failed: BaseException | None = None
        header = pack_header(FrameHeader(MAGIC_WAL, FORMAT_VERSION, 0, 0, first_seq, 0, 0))
        self._file: AppendFile = fs.open_append(self.path, create=True)
        try:
            self._file.write(header)
            self._file.sync()
            fs.sync_dir(directory)
        except BaseException:
            self._file.close()
            raise
        self._written = self._synced = HEADER_SIZE

    @property
    def size_bytes(self) -> int:
        """Bytes handed to the OS so far (header included)."""
        return self._written

    def _check(self) -> None:
        if self._failed is not None:
            raise StorageError(
                f"the WAL {self.path} failed earlier ({self._failed}); writes are refused "
                "until the database is reopened"
            )

    def append(self, seq: int, payload: Sequence[bytes | memoryview]) -> int:
        """Append one record; returns the file offset just past it. Not yet durable."""
        self._check()
        data = _record_bytes(seq, payload)
        try:
            self._file.write(data)
        except BaseException as exc:
            self._failed = exc
            raise
        self._written += len(data)
        return self._written

    def sync_to(self, offset: int) -> None:
        """Return once everything up to ``offset`` is fsynced (group commit)."""
        self._check()
        if self._synced >= offset:
            return
        with self._sync_lock:
            self._check()
            if self._synced >= offset:
                return
            target = self._written
            try:
                self._file.sync()
            except BaseException as exc:
                self._failed = exc
                raise
            self._synced = max(self._synced, target)

    def close(self, *, sync: bool) -> None:
        """Close the file, fsyncing first when ``sync`` (and the writer is healthy)."""
        try:
            if sync and self._failed is None and self._synced < self._written:
                self.sync_to(self._written)
        finally:
            with self._sync_lock:  # never close under a concurrent group-commit fsync
                self._file.close()


@dataclass(slots=True)
class WalRecord:
    seq: int
    payload: bytes
    offset: int


@dataclass(slots=True)
class WalScan:
    """What :func:`read_wal` found in one file."""

    path: str
    first_seq: int
    records: list[WalRecord] = field(default_factory=list)
    torn_at: int | None = None  # offset of a dropped torn tail (last file only)
    salvaged_at: int | None = None  # offset where salvage skipped the rest
    valid_end: int = HEADER_SIZE


def _parse_at(data: bytes, pos: int, expected_seq: int | None) -> WalRecord | None:
    """The valid record starting at ``pos`` or None (short, bad CRC, bad type, bad seq)."""
    if pos < 0 or len(data) - pos < WAL_RECORD_HEADER_SIZE:
        return None
    crc, length, rtype, seq = WAL_RECORD_HEADER.unpack_from(data, pos)
    end = pos + WAL_RECORD_HEADER_SIZE + length
    if length > MAX_WAL_RECORD_BYTES or end > len(data):
        return None
    if crc32c(memoryview(data)[pos + 4 : end]) != crc:
        return None
    if rtype != WAL_RECORD_BATCH or (expected_seq is not None and seq != expected_seq):
        return None
    return WalRecord(seq, data[pos + WAL_RECORD_HEADER_SIZE : end], pos)


def _valid_record_after(data: bytes, start: int, last_seq: int) -> int | None:
    """Offset of a valid record after ``start`` with a sequence number just past
    ``last_seq``, found by searching for its sequence bytes (the length field near the
    damage cannot be trusted). None if there is none."""
    for seq in range(last_seq + 1, last_seq + 4):
        needle = seq.to_bytes(8, "little")
        hit = data.find(needle, start)
        while hit != -1:
            pos = hit - 12
            if pos > start - 1 and _parse_at(data, pos, seq) is not None:
                return pos
            hit = data.find(needle, hit + 1)
    return None


def read_wal(
    fs: FileSystem, path: str, expected_first_seq: int, *, is_last: bool, salvage: bool
) -> WalScan:
    """Read and verify every record of one WAL file.

    Raises CorruptionError for damage that is not a torn tail of the last file (see the
    module docstring), unless ``salvage``, which skips the damaged remainder instead.
    """
    data = fs.read_bytes(path)
    scan = WalScan(path, expected_first_seq)
    if len(data) < HEADER_SIZE and is_last:
        # The writer died while creating the file, before its header was synced.
        scan.torn_at = 0
        scan.valid_end = 0
        return scan
    header = unpack_header(data, MAGIC_WAL, path)
    if header.aux != expected_first_seq:
        raise CorruptionError(
            f"WAL header says first sequence {header.aux}, name says {expected_first_seq}",
            path=path,
            offset=24,
        )
    pos = HEADER_SIZE
    seq = expected_first_seq
    while pos < len(data):
        record = _parse_at(data, pos, seq)
        if record is None:
            later = _valid_record_after(data, pos + 1, seq - 1)
            if is_last and later is None:
                scan.torn_at = pos
                break
            if salvage:
                scan.salvaged_at = pos
                break
            raise CorruptionError(
                "WAL record damaged before the end of the log (acknowledged data); "
                "open with salvage=True to skip it",
                path=path,
                offset=pos,
            )
        scan.records.append(record)
        pos += WAL_RECORD_HEADER_SIZE + len(record.payload)
        seq += 1
    scan.valid_end = pos
    return scan
