"""Framed files: a 64-byte verified header followed by one checksummed payload.

Every KeelDB file except the WAL and the HNSW index has this shape (see
``docs/format.md``). The writer computes the payload CRC32C while streaming; the reader
checks magic, version, header CRC, exact length and (unless deferred) the payload CRC, and
reports damage as :class:`~keeldb.errors.CorruptionError` with the file and offset.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import chain

import crc32c as _crc32c

from keeldb.errors import CorruptionError, translate_os_error
from keeldb.storage.fileio import FileSystem, atomic_write
from keeldb.storage.format import FORMAT_VERSION, HEADER, HEADER_SIZE

__all__ = [
    "FrameHeader",
    "crc32c",
    "map_framed",
    "pack_header",
    "read_framed",
    "unpack_header",
    "write_framed",
]


def crc32c(data: bytes | memoryview, value: int = 0) -> int:
    """CRC32C (Castagnoli) of ``data``, continuing from ``value``; hardware accelerated
    (SSE4.2 / ARMv8 CRC), zero-copy on memoryviews of mmaps and numpy arrays."""
    return int(_crc32c.crc32c(data, value))


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The decoded 64-byte header (see :mod:`keeldb.storage.format`)."""

    magic: bytes
    version: int
    flags: int
    rows: int
    aux: int
    payload_len: int
    payload_crc: int
    aux2: int = 0
    aux3: int = 0


def pack_header(h: FrameHeader) -> bytes:
    """The 64 header bytes of ``h``, header CRC included."""
    body = HEADER.pack(
        h.magic,
        h.version,
        h.flags,
        h.rows,
        h.aux,
        h.payload_len,
        h.payload_crc,
        h.aux2,
        h.aux3,
        0,
        0,
    )
    return body[:60] + crc32c(body[:60]).to_bytes(4, "little")


def unpack_header(
    raw: bytes | memoryview,
    magic: bytes,
    path: str,
    offset: int = 0,
    versions: tuple[int, ...] = (FORMAT_VERSION,),
) -> FrameHeader:
    """Decode and verify a header read from ``path`` at ``offset``.

    Raises CorruptionError on a short header, a bad header CRC, a wrong magic or a
    format version not in ``versions`` (an unknown version is refused, never half-read).
    """
    if len(raw) < HEADER_SIZE:
        raise CorruptionError("truncated header", path=path, offset=offset)
    raw = bytes(raw[:HEADER_SIZE])
    stored_crc = int.from_bytes(raw[60:64], "little")
    if crc32c(raw[:60]) != stored_crc:
        raise CorruptionError("header checksum mismatch", path=path, offset=offset)
    fields = HEADER.unpack(raw)
    if fields[0] != magic:
        raise CorruptionError(
            f"bad magic {fields[0]!r}, expected {magic!r}", path=path, offset=offset
        )
    if fields[1] not in versions:
        raise CorruptionError(
            f"unsupported format version {fields[1]}", path=path, offset=offset + 8
        )
    return FrameHeader(*fields[:9])


def write_framed(
    fs: FileSystem,
    path: str,
    magic: bytes,
    chunks: Sequence[bytes | memoryview],
    *,
    rows: int = 0,
    aux: int = 0,
    atomic: bool = True,
) -> int:
    """Write a framed file whose payload is the concatenation of ``chunks``.

    With ``atomic`` the file replaces ``path`` via temp + fsync + rename + dir fsync;
    without it ``path`` must not exist yet (new segment files: the manifest swap is the
    commit point, so they need no rename). Returns the file size in bytes.
    """
    views = [memoryview(c).cast("B") for c in chunks]
    return write_framed_stream(fs, path, magic, lambda: views, rows=rows, aux=aux, atomic=atomic)


def write_framed_stream(
    fs: FileSystem,
    path: str,
    magic: bytes,
    chunks: Callable[[], Iterable[bytes | memoryview]],
    *,
    rows: int = 0,
    aux: int = 0,
    atomic: bool = True,
) -> int:
    """:func:`write_framed` of a payload produced piece by piece: ``chunks()`` is called
    twice (checksum, then write) and must give the same bytes both times, so a payload
    built a slice at a time is never whole in memory. Returns the file size in bytes."""
    crc = 0
    length = 0
    for c in chunks():
        v = memoryview(c).cast("B")
        crc = crc32c(v, crc)
        length += len(v)
    header = pack_header(FrameHeader(magic, FORMAT_VERSION, 0, rows, aux, length, crc))
    parts: Iterable[bytes | memoryview] = chain([header], chunks())
    if atomic:
        atomic_write(fs, path, parts)
    else:
        fs.write_new(path, parts)
    return HEADER_SIZE + length


def read_framed(fs: FileSystem, path: str, magic: bytes) -> tuple[FrameHeader, bytes]:
    """Read and fully verify a framed file; returns its header and payload bytes."""
    data = fs.read_bytes(path)
    header = unpack_header(data, magic, path)
    _check_length(header, len(data), path)
    payload = data[HEADER_SIZE:]
    if crc32c(payload) != header.payload_crc:
        raise CorruptionError("payload checksum mismatch", path=path, offset=HEADER_SIZE)
    return header, payload


def map_framed(path: str, magic: bytes, *, verify: bool) -> tuple[FrameHeader, mmap.mmap]:
    """Memory-map a framed file read-only; verify the header and length always, and the
    payload CRC when ``verify`` (large vector files defer it to the scrubber / check).

    The returned map covers the whole file; the payload starts at ``HEADER_SIZE``.
    """
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_SIZE:
                raise CorruptionError(f"file too short ({size} bytes)", path=path, offset=0)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise translate_os_error(exc, f"map {path}") from exc
    try:
        header = unpack_header(memoryview(mm)[:HEADER_SIZE], magic, path)
        _check_length(header, size, path)
        if verify:
            verify_payload(mm, header, path)
    except BaseException:
        mm.close()
        raise
    return header, mm


def verify_payload(mm: mmap.mmap | bytes, header: FrameHeader, path: str) -> None:
    """Check the payload CRC of a mapped framed file (raises CorruptionError)."""
    view = memoryview(mm)
    try:
        if crc32c(view[HEADER_SIZE : HEADER_SIZE + header.payload_len]) != header.payload_crc:
            raise CorruptionError("payload checksum mismatch", path=path, offset=HEADER_SIZE)
    finally:
        view.release()


SCRUB_CHUNK_BYTES = 8 << 20


def crc32c_of_file_range(path: str, start: int, length: int) -> int:
    """CRC32C of ``length`` bytes of ``path`` from ``start``, read in chunks with
    ``pread`` and dropped from the page cache behind the reader (``POSIX_FADV_DONTNEED``)
    so that verifying a large file neither maps it into the process nor evicts the pages
    searches are using. A short file yields the CRC of what is there (a mismatch)."""
    crc = 0
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise translate_os_error(exc, f"open {path}") from exc
    try:
        pos = start
        end = start + length
        buf = bytearray(min(SCRUB_CHUNK_BYTES, max(length, 1)))
        view = memoryview(buf)
        while pos < end:
            want = min(len(buf), end - pos)
            got = os.preadv(fd, [view[:want]], pos)
            if got <= 0:
                break
            crc = crc32c(view[:got], crc)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, pos, got, os.POSIX_FADV_DONTNEED)
            pos += got
        view.release()
    except OSError as exc:
        raise translate_os_error(exc, f"read {path}") from exc
    finally:
        os.close(fd)
    return crc


def verify_payload_streaming(header: FrameHeader, path: str) -> None:
    """Like :func:`verify_payload`, reading the file instead of a map (see
    :func:`crc32c_of_file_range`)."""
    if crc32c_of_file_range(path, HEADER_SIZE, header.payload_len) != header.payload_crc:
        raise CorruptionError("payload checksum mismatch", path=path, offset=HEADER_SIZE)


def _check_length(header: FrameHeader, size: int, path: str) -> None:
    expected = HEADER_SIZE + header.payload_len
    if size != expected:
        what = "truncated" if size < expected else "trailing bytes"
        raise CorruptionError(
            f"{what}: file is {size} bytes, header says {expected}",
            path=path,
            offset=min(size, expected),
        )
