"""The column payload behind :meth:`MetadataColumns.to_bytes` / ``from_bytes``.

The byte layout is documented in docs/filtering.md ("Column file payload"); keep the two
in step. All integers are little-endian; every array starts on an 8-byte boundary of the
payload so that zero-copy numpy views of an aligned buffer are aligned too.

The decoder trusts nothing: every count is checked against the bytes that remain before
anything is sliced or allocated, so a damaged payload raises ``ValueError`` instead of
reading out of bounds, hanging or allocating memory out of proportion to its size. The
engine adds its own framing and checksum around the payload; these checks are the last
line of defence, not the first.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from keeldb.filtering.parts import MAX_ROWS, Column, Part, Strings
from keeldb.filtering.values import ELEMENT_KINDS, SCALAR_KINDS, Kind
from keeldb.storage.format import FILTER_COLUMNS_VERSION, MAGIC_FILTER_COLUMNS

__all__ = ["FORMAT_VERSION", "MAGIC", "decode", "encode"]

MAGIC = MAGIC_FILTER_COLUMNS
FORMAT_VERSION = FILTER_COLUMNS_VERSION

_HEADER = struct.Struct("<8sIIQ")  # magic, version, column_count, row_count
_COLUMN = struct.Struct("<IIQ")  # path_len, part_count, string_count
_PART = struct.Struct("<B3xIQ")  # kind, (3 pad bytes), reserved, entry_count

_ROWS = np.dtype("<u4")
_OFFSETS = np.dtype("<u8")
_FILE_DTYPES: dict[Kind, np.dtype[Any]] = {
    Kind.BOOL: np.dtype("u1"),
    Kind.INT: np.dtype("<i8"),
    Kind.FLOAT: np.dtype("<f8"),
    Kind.STR: np.dtype("<i4"),
    Kind.ELEM_BOOL: np.dtype("u1"),
    Kind.ELEM_INT: np.dtype("<i8"),
    Kind.ELEM_FLOAT: np.dtype("<f8"),
    Kind.ELEM_STR: np.dtype("<i4"),
}
_KNOWN_KINDS = frozenset(int(k) for k in Kind)


def _pad8(size: int) -> int:
    return -size % 8


# -- encoding ------------------------------------------------------------------------------


def encode(rows: int, columns: dict[str, Column]) -> bytes:
    """Serialise ``rows`` and ``columns``; paths sorted by UTF-8 bytes, parts by kind."""
    chunks: list[bytes] = []
    encoded_paths = sorted((path.encode("utf-8", "surrogatepass"), path) for path in columns)
    chunks.append(_HEADER.pack(MAGIC, FORMAT_VERSION, len(encoded_paths), rows))
    for path_bytes, path in encoded_paths:
        column = columns[path]
        parts = [column.parts[k] for k in sorted(column.parts)]
        offsets, blob = column.strings.encoded()
        chunks.append(_COLUMN.pack(len(path_bytes), len(parts), int(offsets.shape[0]) - 1))
        chunks.append(path_bytes + b"\x00" * _pad8(len(path_bytes)))
        chunks.append(offsets.astype(_OFFSETS, copy=False).tobytes())
        chunks.append(blob + b"\x00" * _pad8(len(blob)))
        for part in parts:
            _encode_part(chunks, part)
    return b"".join(chunks)


def _encode_part(chunks: list[bytes], part: Part) -> None:
    row_bytes = part.rows.astype(_ROWS, copy=False).tobytes()
    chunks.append(_PART.pack(int(part.kind), 0, part.rows.shape[0]))
    chunks.append(row_bytes + b"\x00" * _pad8(len(row_bytes)))
    dtype = _FILE_DTYPES.get(part.kind)
    if dtype is not None:
        value_bytes = part.values.astype(dtype, copy=False).tobytes()
        chunks.append(value_bytes + b"\x00" * _pad8(len(value_bytes)))


# -- decoding ------------------------------------------------------------------------------


class _Reader:
    """A bounds-checked cursor over the payload."""

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.pos = 0

    def fail(self, reason: str) -> ValueError:
        return ValueError(f"filter column payload: {reason} (at byte {self.pos})")

    def take(self, size: int, what: str) -> memoryview:
        if size < 0 or size > len(self.view) - self.pos:
            raise self.fail(f"{what} needs {size} bytes, {len(self.view) - self.pos} remain")
        chunk = self.view[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, layout: struct.Struct, what: str) -> tuple[Any, ...]:
        return layout.unpack(self.take(layout.size, what))

    def padding(self, size: int) -> None:
        pad = self.take(_pad8(size), "padding")
        if any(pad):
            raise self.fail("non-zero padding")

    def array(self, dtype: np.dtype[Any], count: int, what: str) -> np.ndarray:
        """A zero-copy view of ``count`` items, then the padding to 8 bytes."""
        start = self.pos
        size = count * dtype.itemsize
        self.take(size, what)
        self.padding(size)
        return np.frombuffer(self.view, dtype=dtype, count=count, offset=start)


def decode(buf: bytes | bytearray | memoryview) -> tuple[int, dict[str, Column]]:
    """Parse a payload written by :func:`encode`; ``ValueError`` if it is malformed."""
    try:
        view = memoryview(buf).cast("B")
    except TypeError as exc:
        raise ValueError(f"filter column payload: unusable buffer: {exc}") from exc
    reader = _Reader(view)
    magic, version, column_count, rows = reader.unpack(_HEADER, "header")
    if magic != MAGIC:
        raise reader.fail(f"bad magic {bytes(magic)!r}")
    if version != FORMAT_VERSION:
        raise reader.fail(f"unsupported format version {version}")
    if rows > MAX_ROWS:
        raise reader.fail(f"row count {rows} exceeds {MAX_ROWS}")
    columns: dict[str, Column] = {}
    previous: bytes | None = None
    for _ in range(column_count):
        column, path_bytes = _decode_column(reader, rows)
        if previous is not None and path_bytes <= previous:
            raise reader.fail("column paths are not strictly increasing")
        previous = path_bytes
        columns[column.path] = column
    if reader.pos != len(view):
        raise reader.fail(f"{len(view) - reader.pos} trailing bytes")
    return rows, columns


def _decode_column(reader: _Reader, rows: int) -> tuple[Column, bytes]:
    path_len, part_count, string_count = reader.unpack(_COLUMN, "column header")
    path_bytes = bytes(reader.take(path_len, "path"))
    reader.padding(path_len)
    try:
        path = path_bytes.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise reader.fail(f"path is not UTF-8: {exc}") from exc
    column = Column(path)
    if string_count + 1 > (len(reader.view) - reader.pos) // _OFFSETS.itemsize:
        raise reader.fail(f"string count {string_count} exceeds the payload")
    offsets = reader.array(_OFFSETS, string_count + 1, "string offsets")
    blob_start = reader.pos
    blob_len = int(offsets[-1])
    if offsets[0] != 0 or bool(np.any(offsets[1:] < offsets[:-1])):
        raise reader.fail("string offsets are not non-decreasing from 0")
    blob = reader.take(blob_len, "string bytes")
    reader.padding(blob_len)
    _check_utf8(reader, blob, offsets, blob_start)
    column.strings = Strings.from_raw(offsets, blob)
    scalar_rows: list[np.ndarray] = []
    previous_kind = 0
    for _ in range(part_count):
        part = _decode_part(reader, rows, string_count)
        if part.kind <= previous_kind:
            raise reader.fail(f"parts of {path!r} are not in increasing kind order")
        previous_kind = part.kind
        column.parts[part.kind] = part
        if part.kind in SCALAR_KINDS:
            scalar_rows.append(part.rows)
    _check_column(reader, column, scalar_rows, rows)
    return column, path_bytes


def _check_utf8(reader: _Reader, blob: memoryview, offsets: np.ndarray, start: int) -> None:
    """The blob is UTF-8 and every offset falls on a character boundary, so that each
    string decodes on its own."""
    try:
        str(blob, "utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"filter column payload: string bytes are not UTF-8 (at byte {start + exc.start})"
        ) from exc
    inner = offsets[(offsets > 0) & (offsets < len(blob))]
    if inner.shape[0]:
        lead = np.frombuffer(blob, dtype=np.uint8)[inner.astype(np.intp)]
        if bool(np.any((lead & 0xC0) == 0x80)):
            raise reader.fail("a string offset splits a UTF-8 character")


def _decode_part(reader: _Reader, rows: int, string_count: int) -> Part:
    kind_number, reserved, count = reader.unpack(_PART, "part header")
    if kind_number not in _KNOWN_KINDS:
        raise reader.fail(f"unknown kind {kind_number}")
    if reserved != 0:
        raise reader.fail("non-zero reserved field")
    kind = Kind(kind_number)
    if count > len(reader.view) - reader.pos:  # every entry takes at least one byte
        raise reader.fail(f"entry count {count} exceeds the payload")
    row_numbers = reader.array(_ROWS, count, "rows")
    if count:
        if int(row_numbers[-1]) >= rows:
            raise reader.fail(f"row number {int(row_numbers[-1])} >= row count {rows}")
        later, earlier = row_numbers[1:], row_numbers[:-1]
        disorder = later <= earlier if kind in SCALAR_KINDS else later < earlier
        if bool(np.any(disorder)):
            raise reader.fail(f"rows of kind {kind.name} are not in order")
    dtype = _FILE_DTYPES.get(kind)
    if dtype is None:
        return Part(kind, row_numbers, None, owned=False)
    values = reader.array(dtype, count, "values")
    if kind in (Kind.BOOL, Kind.ELEM_BOOL):
        if bool(np.any(values > 1)):
            raise reader.fail("bool values other than 0 and 1")
        values = values.view(np.bool_)
    elif kind in (Kind.STR, Kind.ELEM_STR) and count:
        if int(values.min()) < 0 or int(values.max()) >= string_count:
            raise reader.fail("string code outside the dictionary")
    return Part(kind, row_numbers, values, owned=False)


def _check_column(
    reader: _Reader, column: Column, scalar_rows: list[np.ndarray], rows: int
) -> None:
    """Cross-part invariants: a row holds one kind per path; elements belong to arrays."""
    if len(scalar_rows) > 1:
        if rows <= 64 * len(reader.view):  # a bitmap costs memory in proportion to the input
            seen = np.zeros(rows, dtype=np.bool_)
            for part_rows in scalar_rows:
                if bool(np.any(seen[part_rows])):
                    raise reader.fail(f"a row of {column.path!r} holds two kinds")
                seen[part_rows] = True
        else:
            merged = np.sort(np.concatenate(scalar_rows))
            if bool(np.any(merged[1:] == merged[:-1])):
                raise reader.fail(f"a row of {column.path!r} holds two kinds")
    arrays = column.part(Kind.ARRAY)
    for kind in ELEMENT_KINDS:
        part = column.part(kind)
        if part is None or not part.rows.shape[0]:
            continue
        if arrays is None or not bool(np.all(np.isin(part.rows, arrays.rows))):
            raise reader.fail(f"{kind.name} entries of {column.path!r} outside any array")
