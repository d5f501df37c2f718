"""Writing and reading the immutable files of a sealed segment.

A segment ``seg-<id>`` has these framed files (layouts in ``docs/format.md``):

``.vec``   rows x dim float32, row-major, 64-byte aligned (memory-mapped for search)
``.ids``   u64 offsets[n+1] | u64 sorted id hashes[n] | u32 rows by hash[n] | UTF-8 ids
``.meta``  u64 offsets[n+1] | one JSON object per row, concatenated
``.cols``  the filter columns (:class:`keeldb.filtering.MetadataColumns` payload)
``.hnsw``  faiss HNSW index + trailer (:mod:`keeldb.index.hnsw`), only for ``hnsw`` segments
``.del-<generation>``  packed little-endian bitmap of deleted rows (tombstones)

Segment files are written under their final names (they are new and no manifest names them
yet) and fsynced; the manifest swap that follows is the commit point.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import (
    HEADER_SIZE,
    MAGIC_COLUMNS,
    MAGIC_IDS,
    MAGIC_METADATA,
    MAGIC_TOMBSTONES,
    MAGIC_VECTORS,
    segment_file_name,
    tombstone_file_name,
)
from keeldb.storage.framed import (
    FrameHeader,
    map_framed,
    read_framed,
    verify_payload_streaming,
    write_framed,
    write_framed_stream,
)

__all__ = [
    "IdTable",
    "MetadataTable",
    "id_hashes",
    "map_vectors",
    "read_tombstones",
    "write_ids",
    "write_metadata",
    "write_tombstones",
    "write_vectors",
]


# Up to this many rows, per-row scalar offset reads beat a vectorised gather (the common
# k = 10 hits of one query).
_SMALL = 32


def _offset_view(mm: mmap.mmap, start: int, count: int) -> Any:
    """Scalar-indexable view of ``count`` little-endian u64 offsets at ``start``: a native
    ``memoryview`` on little-endian machines (an int per index, ~5x cheaper than indexing
    numpy), else a numpy array. Release it (``_release``) before closing ``mm``."""
    if sys.byteorder == "little":
        return memoryview(mm)[start : start + 8 * count].cast("Q")
    return np.frombuffer(mm, dtype="<u8", count=count, offset=start)


def _release(view: Any) -> None:
    if isinstance(view, memoryview):
        view.release()


def id_hashes(ids: Sequence[str]) -> np.ndarray:
    """Stable 64-bit hashes of ids (BLAKE2b, 8 bytes read little-endian), the key of the
    on-disk id index."""
    b2 = hashlib.blake2b
    digests = b"".join([b2(i.encode(), digest_size=8).digest() for i in ids])
    return np.frombuffer(digests, dtype="<u8").astype(np.uint64)


def _blob(items: Sequence[bytes]) -> tuple[np.ndarray, bytes]:
    lengths = np.fromiter((len(b) for b in items), dtype=np.uint64, count=len(items))
    offsets = np.zeros(len(items) + 1, dtype="<u8")
    np.cumsum(lengths, out=offsets[1:])
    return offsets, b"".join(items)


# --- vectors -------------------------------------------------------------------------------


# Rows of a reordered ``.vec`` are gathered this many bytes at a time.
GATHER_BYTES = 64 << 20


def write_vectors(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    vectors: np.ndarray,
    order: np.ndarray | None = None,
) -> int:
    """Write the new ``.vec`` of ``segment_id``: ``vectors``, or ``vectors[order]`` when
    ``order`` is given, gathered a slice at a time (twice: checksum, then write) so the
    reordered copy is never whole in memory. Returns bytes written."""
    path = os.path.join(directory, segment_file_name(segment_id, "vec"))
    if order is not None:
        dim = int(vectors.shape[1])
        step = max(1, GATHER_BYTES // (4 * dim))

        def gathered() -> Iterator[memoryview]:
            for s in range(0, len(order), step):
                part = np.ascontiguousarray(vectors[order[s : s + step]], dtype="<f4")
                yield part.data.cast("B")

        return write_framed_stream(
            fs, path, MAGIC_VECTORS, gathered, rows=len(order), aux=dim, atomic=False
        )
    data = np.ascontiguousarray(vectors, dtype="<f4")
    return write_framed(
        fs,
        path,
        MAGIC_VECTORS,
        [data.data.cast("B")],
        rows=len(data),
        aux=data.shape[1],
        atomic=False,
    )


@dataclass(slots=True)
class MappedVectors:
    """A segment's vectors, memory-mapped read-only (pages load on first touch)."""

    array: np.ndarray
    header: FrameHeader
    mm: mmap.mmap
    path: str

    def verify(self) -> None:
        """Full payload checksum (deferred at open), read from the file rather than the
        map so the vectors do not all become resident. Raises CorruptionError."""
        verify_payload_streaming(self.header, self.path)

    def advise_random(self) -> None:
        """Tell the kernel rows are read one at a time (``MADV_RANDOM``): a fault loads
        its own page, not the read-ahead window around it, so rows read only to re-score
        a reduced graph's candidates do not pull their neighbours into memory. A no-op
        where ``madvise`` is unavailable."""
        advice = getattr(mmap, "MADV_RANDOM", None)
        if advice is not None:
            try:
                self.mm.madvise(advice)
            except OSError:
                pass  # advice only


def map_vectors(directory: str, segment_id: int, rows: int, dim: int) -> MappedVectors:
    path = os.path.join(directory, segment_file_name(segment_id, "vec"))
    header, mm = map_framed(path, MAGIC_VECTORS, verify=False)
    if header.rows != rows or header.aux != dim or header.payload_len != rows * dim * 4:
        mm.close()
        raise CorruptionError(
            f"vector file shape {header.rows}x{header.aux} != {rows}x{dim}", path=path, offset=16
        )
    array = np.frombuffer(mm, dtype="<f4", count=rows * dim, offset=HEADER_SIZE).reshape(rows, dim)
    return MappedVectors(array, header, mm, path)


# --- ids -----------------------------------------------------------------------------------


def write_ids(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    ids: Sequence[str],
    hashes: np.ndarray | None = None,
) -> int:
    """Write the id file; ``hashes`` are ``id_hashes(ids)`` when the caller has them."""
    path = os.path.join(directory, segment_file_name(segment_id, "ids"))
    offsets, blob = _blob([i.encode() for i in ids])
    if hashes is None:
        hashes = id_hashes(ids)
    assert len(hashes) == len(ids)
    order = np.argsort(hashes, kind="stable")
    arrays = [offsets, hashes[order].astype("<u8"), order.astype("<u4")]
    chunks: list[bytes | memoryview] = [np.ascontiguousarray(a).data.cast("B") for a in arrays]
    chunks.append(blob)
    return write_framed(fs, path, MAGIC_IDS, chunks, rows=len(ids), atomic=False)


class IdTable:
    """A segment's ids: row -> id, and id -> rows through the sorted hash index."""

    def __init__(self, directory: str, segment_id: int, rows: int) -> None:
        self.path = os.path.join(directory, segment_file_name(segment_id, "ids"))
        header, mm = map_framed(self.path, MAGIC_IDS, verify=True)
        self._mm = mm
        n = rows
        need = 8 * (n + 1) + 8 * n + 4 * n
        if header.rows != n or header.payload_len < need:
            raise CorruptionError(
                "id file size disagrees with the manifest", path=self.path, offset=16
            )
        pos = HEADER_SIZE
        self.offsets = np.frombuffer(mm, dtype="<u8", count=n + 1, offset=pos)
        pos += 8 * (n + 1)
        self.hashes = np.frombuffer(mm, dtype="<u8", count=n, offset=pos)
        pos += 8 * n
        self.order = np.frombuffer(mm, dtype="<u4", count=n, offset=pos)
        pos += 4 * n
        self._blob_start = pos
        self._offs = _offset_view(mm, HEADER_SIZE, n + 1)
        blob_len = header.payload_len - (pos - HEADER_SIZE)
        if n:
            offs = self.offsets.astype(np.int64)
            if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
                raise CorruptionError(
                    "id offsets are inconsistent", path=self.path, offset=HEADER_SIZE
                )
            if np.any(self.order >= n) or np.any(self.hashes[1:] < self.hashes[:-1]):
                raise CorruptionError(
                    "id hash index is inconsistent", path=self.path, offset=HEADER_SIZE
                )
        self.rows = n

    def id_at(self, row: int) -> str:
        a, b = self._offs[row], self._offs[row + 1]
        return self._mm[self._blob_start + a : self._blob_start + b].decode()

    def ids_at(self, rows: np.ndarray) -> list[str]:
        return self.ids_many(np.asarray(rows, dtype=np.int64).tolist())

    def ids_many(self, rows: list[int]) -> list[str]:
        """The ids of ``rows`` (one vectorised offset lookup, then one slice each)."""
        if not rows:
            return []
        mm = self._mm
        base = self._blob_start
        if len(rows) <= _SMALL:
            off = self._offs
            return [mm[base + off[r] : base + off[r + 1]].decode() for r in rows]
        idx = np.asarray(rows, dtype=np.int64)
        starts = (self.offsets[idx] + base).tolist()
        ends = (self.offsets[idx + 1] + base).tolist()
        return [mm[a:b].decode() for a, b in zip(starts, ends, strict=True)]

    def all_ids(self) -> list[str]:
        return [self.id_at(i) for i in range(self.rows)]

    def row_hashes(self, rows: np.ndarray) -> np.ndarray:
        """``id_hashes`` of the ids of ``rows``, read from the hash index (no hashing)."""
        by_row = np.empty(self.rows, dtype=np.uint64)
        by_row[self.order] = self.hashes
        out: np.ndarray = by_row[rows]
        return out

    def close(self) -> None:
        _release(self._offs)
        del self.offsets, self.hashes, self.order, self._offs
        self._mm.close()


# --- metadata ------------------------------------------------------------------------------


def encode_metadata_rows(metadata: Sequence[dict[str, Any]]) -> list[bytes]:
    dumps = orjson.dumps
    return [dumps(m) for m in metadata]


def write_metadata(fs: FileSystem, directory: str, segment_id: int, rows: Sequence[bytes]) -> int:
    path = os.path.join(directory, segment_file_name(segment_id, "meta"))
    offsets, blob = _blob(rows)
    return write_framed(
        fs,
        path,
        MAGIC_METADATA,
        [offsets.data.cast("B"), blob],
        rows=len(rows),
        atomic=False,
    )


class MetadataTable:
    """A segment's metadata: JSON per row, decoded only for the rows asked for."""

    def __init__(self, directory: str, segment_id: int, rows: int) -> None:
        self.path = os.path.join(directory, segment_file_name(segment_id, "meta"))
        header, mm = map_framed(self.path, MAGIC_METADATA, verify=True)
        self._mm = mm
        if header.rows != rows or header.payload_len < 8 * (rows + 1):
            raise CorruptionError(
                "metadata file size disagrees with the manifest", path=self.path, offset=16
            )
        self.offsets = np.frombuffer(mm, dtype="<u8", count=rows + 1, offset=HEADER_SIZE)
        self._blob_start = HEADER_SIZE + 8 * (rows + 1)
        self._offs = _offset_view(mm, HEADER_SIZE, rows + 1)
        blob_len = header.payload_len - 8 * (rows + 1)
        if (
            int(self.offsets[0]) != 0
            or int(self.offsets[-1]) != blob_len
            or (rows > 1 and np.any(np.diff(self.offsets.astype(np.int64)) < 0))
        ):
            raise CorruptionError(
                "metadata offsets are inconsistent", path=self.path, offset=HEADER_SIZE
            )
        self.rows = rows

    def raw_many(self, rows: list[int]) -> list[bytes]:
        """The raw JSON of ``rows`` (one vectorised offset lookup, then one slice each)."""
        mm = self._mm
        base = self._blob_start
        if len(rows) <= _SMALL:
            off = self._offs
            return [mm[base + off[r] : base + off[r + 1]] for r in rows]
        idx = np.asarray(rows, dtype=np.int64)
        starts = (self.offsets[idx] + base).tolist()
        ends = (self.offsets[idx + 1] + base).tolist()
        return [mm[a:b] for a, b in zip(starts, ends, strict=True)]

    def raw_at(self, row: int) -> bytes:
        a, b = self._offs[row], self._offs[row + 1]
        return self._mm[self._blob_start + a : self._blob_start + b]

    def at(self, row: int) -> dict[str, Any]:
        try:
            value = orjson.loads(self.raw_at(row))
        except ValueError as exc:
            raise CorruptionError(f"metadata of row {row} is not JSON", path=self.path) from exc
        if not isinstance(value, dict):
            raise CorruptionError(f"metadata of row {row} is not an object", path=self.path)
        return value

    def close(self) -> None:
        _release(self._offs)
        del self.offsets, self._offs
        self._mm.close()


# --- columns -------------------------------------------------------------------------------


def write_columns(
    fs: FileSystem, directory: str, segment_id: int, payload: bytes, rows: int
) -> int:
    path = os.path.join(directory, segment_file_name(segment_id, "cols"))
    return write_framed(fs, path, MAGIC_COLUMNS, [payload], rows=rows, atomic=False)


def read_columns(fs: FileSystem, directory: str, segment_id: int, rows: int) -> tuple[str, bytes]:
    path = os.path.join(directory, segment_file_name(segment_id, "cols"))
    header, payload = read_framed(fs, path, MAGIC_COLUMNS)
    if header.rows != rows:
        raise CorruptionError(
            "column file row count disagrees with the manifest", path=path, offset=16
        )
    return path, payload


# --- tombstones ----------------------------------------------------------------------------


def write_tombstones(
    fs: FileSystem, directory: str, segment_id: int, generation: int, dead: np.ndarray
) -> str:
    name = tombstone_file_name(segment_id, generation)
    bits = np.packbits(dead.astype(bool), bitorder="little")
    write_framed(
        fs,
        os.path.join(directory, name),
        MAGIC_TOMBSTONES,
        [bits.tobytes()],
        rows=len(dead),
        aux=int(np.count_nonzero(dead)),
        atomic=False,
    )
    return name


def read_tombstones(fs: FileSystem, directory: str, name: str, rows: int) -> np.ndarray:
    """The dead-row mask (bool, len ``rows``) stored in tombstone file ``name``."""
    path = os.path.join(directory, name)
    header, payload = read_framed(fs, path, MAGIC_TOMBSTONES)
    if header.rows != rows or len(payload) != (rows + 7) // 8:
        raise CorruptionError(
            "tombstone file size disagrees with the manifest", path=path, offset=16
        )
    dead = np.unpackbits(np.frombuffer(payload, np.uint8), count=rows, bitorder="little").astype(
        bool
    )
    if int(np.count_nonzero(dead)) != header.aux:
        raise CorruptionError("tombstone count disagrees with its header", path=path, offset=24)
    return dead
