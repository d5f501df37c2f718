"""Typed, per-path metadata columns: what filter masks are computed from.

One :class:`Column` per dotted path. A column holds one :class:`Part` per kind of value
seen at that path (:class:`~keeldb.filtering.values.Kind`): the sorted row numbers that
hold a value of that kind and, for kinds with values, the values themselves:

=================  ==============================  ========================================
kind               values                          rows
=================  ==============================  ========================================
NULL, ARRAY,       none                            strictly increasing, one per row
OBJECT
BOOL               bool                            strictly increasing
INT                int64 (exact)                   strictly increasing
FLOAT              float64                         strictly increasing
STR                int32 code into the column's    strictly increasing
                   string dictionary
ELEM_BOOL/INT/     one entry per array element     non-decreasing (row repeated per
FLOAT/STR          (same encodings as above)       element)
=================  ==============================  ========================================

A row holds at most one of the non-element kinds per path. Storing row numbers per kind
keeps sparse paths (present in 1 % of rows) cheap, and a kind that covers every row is
recognised by its length, so the mask for a dense path is a single numpy comparison.

Rows are append-only: :meth:`MetadataColumns.append` adds a batch at amortised O(batch)
cost (arrays grow by doubling). Thread safety: appends must not run concurrently with
each other or with readers; any number of readers (``Filter.mask``, ``to_bytes``) may run
concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keeldb.filtering.values import (
    ELEMENT_KINDS,
    INT64_MAX,
    INT64_MIN,
    MAX_METADATA_DEPTH,
    Kind,
    classify_element,
    classify_scalar,
)

__all__ = ["MAX_ROWS", "Column", "MetadataColumns", "Part", "Strings", "value_dtype"]

MAX_ROWS = 2**32 - 1
"""Row numbers are stored as uint32."""

_ROW_DTYPE = np.dtype(np.uint32)
_VALUE_DTYPES: dict[Kind, np.dtype[Any]] = {
    Kind.BOOL: np.dtype(np.bool_),
    Kind.INT: np.dtype(np.int64),
    Kind.FLOAT: np.dtype(np.float64),
    Kind.STR: np.dtype(np.int32),
    Kind.ELEM_BOOL: np.dtype(np.bool_),
    Kind.ELEM_INT: np.dtype(np.int64),
    Kind.ELEM_FLOAT: np.dtype(np.float64),
    Kind.ELEM_STR: np.dtype(np.int32),
}


def value_dtype(kind: Kind) -> np.dtype[Any] | None:
    """The in-memory dtype of a kind's values, or ``None`` for kinds without values."""
    return _VALUE_DTYPES.get(kind)


class _Buffer:
    """A 1-d array that grows by doubling. Wrapped arrays (e.g. zero-copy views of a
    payload) are never written to: the first append copies them."""

    __slots__ = ("_data", "_owned", "_size")

    def __init__(self, data: np.ndarray, *, owned: bool) -> None:
        self._data = data
        self._size = int(data.shape[0])
        self._owned = owned

    def view(self) -> np.ndarray:
        return self._data[: self._size]

    @property
    def nbytes(self) -> int:
        return int(self._data.nbytes) if self._owned else self._size * self._data.itemsize

    def extend(self, values: np.ndarray) -> None:
        need = self._size + int(values.shape[0])
        if not self._owned or need > self._data.shape[0]:
            capacity = max(need, 2 * int(self._data.shape[0]), 16)
            grown = np.empty(capacity, dtype=self._data.dtype)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
            self._owned = True
        self._data[self._size : need] = values
        self._size = need


class Part:
    """The rows (and values) of one kind at one path."""

    __slots__ = ("_rows", "_values", "kind")

    def __init__(self, kind: Kind, rows: np.ndarray, values: np.ndarray | None, *, owned: bool):
        self.kind = kind
        self._rows = _Buffer(rows, owned=owned)
        self._values = None if values is None else _Buffer(values, owned=owned)

    @classmethod
    def empty(cls, kind: Kind) -> Part:
        dtype = value_dtype(kind)
        values = None if dtype is None else np.empty(0, dtype=dtype)
        return cls(kind, np.empty(0, dtype=_ROW_DTYPE), values, owned=True)

    @property
    def rows(self) -> np.ndarray:
        """Row numbers (uint32), sorted; do not modify."""
        return self._rows.view()

    @property
    def values(self) -> np.ndarray:
        """Values aligned with :attr:`rows`; raises for kinds without values."""
        assert self._values is not None, self.kind
        return self._values.view()

    @property
    def nbytes(self) -> int:
        return self._rows.nbytes + (0 if self._values is None else self._values.nbytes)

    def extend(self, rows: list[int], values: list[Any] | None) -> None:
        self._rows.extend(np.array(rows, dtype=_ROW_DTYPE))
        if self._values is not None:
            assert values is not None and len(values) == len(rows)
            self._values.extend(np.array(values, dtype=self._values.view().dtype))


class Strings:
    """A column's string dictionary: code -> string, in first-seen order.

    Loaded from a payload it stays raw (offsets + UTF-8 blob) until first used, so that
    opening a segment costs nothing per distinct string. A payload could (only if
    damaged) hold the same string twice; lookups then return every code of it.
    """

    __slots__ = ("_blob", "_count", "_dups", "_index", "_list", "_offsets", "_sorted")

    def __init__(self) -> None:
        self._list: list[str] = []
        self._index: dict[str, int] = {}
        self._dups: dict[str, list[int]] = {}
        self._offsets: np.ndarray | None = None
        self._blob: memoryview | None = None
        self._count = 0
        self._sorted: tuple[np.ndarray, list[str]] | None = None

    @classmethod
    def from_raw(cls, offsets: np.ndarray, blob: memoryview) -> Strings:
        """Wrap a validated dictionary: ``offsets`` (uint64, ``count + 1`` entries, first 0,
        non-decreasing, last ``len(blob)``, on UTF-8 character boundaries)."""
        strings = cls()
        strings._offsets = offsets
        strings._blob = blob
        strings._count = int(offsets.shape[0]) - 1
        return strings

    def __len__(self) -> int:
        return self._count

    def _decode(self) -> None:
        if self._offsets is None:
            return
        assert self._blob is not None
        bounds = self._offsets.tolist()
        text = str(self._blob, "utf-8", "surrogatepass")
        if len(text) == len(self._blob):  # ASCII: byte offsets are character offsets
            decoded = [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        else:
            raw = bytes(self._blob)
            decoded = [
                raw[a:b].decode("utf-8", "surrogatepass")
                for a, b in zip(bounds, bounds[1:], strict=False)
            ]
        index: dict[str, int] = {}
        dups: dict[str, list[int]] = {}
        for code, s in enumerate(decoded):
            first = index.setdefault(s, code)
            if first != code:
                dups.setdefault(s, [first]).append(code)
        # Concurrent readers may decode at the same time: publish complete tables only,
        # and drop the raw form last (readers test it to decide whether to decode).
        self._list, self._index, self._dups = decoded, index, dups
        self._offsets = self._blob = None

    def table(self) -> tuple[list[str], dict[str, int]]:
        """The decoded list and index, for appending new strings (the caller keeps
        ``len(list)`` in step via :meth:`added`)."""
        self._decode()
        return self._list, self._index

    def added(self) -> None:
        """Record strings appended to the list returned by :meth:`table`."""
        self._count = len(self._list)

    def codes(self, value: str) -> list[int]:
        """Every code whose string equals ``value`` (normally zero or one)."""
        self._decode()
        code = self._index.get(value)
        if code is None:
            return []
        return self._dups.get(value, [code])

    def order(self) -> tuple[np.ndarray, list[str]]:
        """``(rank, sorted_strings)``: ``rank[code]`` is the position of the code's string
        in code point order. Cached until the dictionary grows."""
        cached = self._sorted
        if cached is not None and cached[0].shape[0] == self._count:
            return cached
        self._decode()
        strings = self._list[: self._count]
        order = sorted(range(len(strings)), key=strings.__getitem__)
        rank = np.empty(len(strings), dtype=np.int64)
        rank[np.array(order, dtype=np.int64)] = np.arange(len(strings), dtype=np.int64)
        result = (rank, [strings[i] for i in order])
        self._sorted = result
        return result

    def encoded(self) -> tuple[np.ndarray, bytes]:
        """``(offsets uint64[count + 1], utf-8 blob)`` for the payload."""
        if self._offsets is not None:
            assert self._blob is not None
            return self._offsets, bytes(self._blob)
        pieces = [s.encode("utf-8", "surrogatepass") for s in self._list[: self._count]]
        offsets = np.zeros(len(pieces) + 1, dtype=np.uint64)
        np.cumsum(np.fromiter(map(len, pieces), np.uint64, len(pieces)), out=offsets[1:])
        return offsets, b"".join(pieces)

    @property
    def nbytes(self) -> int:
        if self._offsets is not None:
            assert self._blob is not None
            return int(self._offsets.nbytes) + len(self._blob)
        # Rough CPython cost: list slot + dict entry + str header, plus the characters.
        return sum(map(len, self._list)) + 120 * len(self._list)


class Column:
    """Everything stored at one dotted path."""

    __slots__ = ("parts", "path", "strings")

    def __init__(self, path: str) -> None:
        self.path = path
        self.parts: dict[Kind, Part] = {}
        self.strings = Strings()

    def part(self, kind: Kind) -> Part | None:
        return self.parts.get(kind)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts.values()) + self.strings.nbytes + len(self.path)


class _Staging:
    """The rows of one append batch for one column, as Python lists.

    The four common kinds have their own lists (``MetadataColumns._stage_object`` appends
    to them directly: this is the hottest loop of a build); other kinds go through
    :meth:`add`.
    """

    __slots__ = (
        "bools",
        "column",
        "floats",
        "index",
        "ints",
        "last_row",
        "lists",
        "strs",
        "strings",
    )

    def __init__(self, column: Column) -> None:
        self.column = column
        self.last_row = -1
        self.strings, self.index = column.strings.table()
        self.strs: tuple[list[int], list[Any]] = ([], [])
        self.ints: tuple[list[int], list[Any]] = ([], [])
        self.floats: tuple[list[int], list[Any]] = ([], [])
        self.bools: tuple[list[int], list[Any]] = ([], [])
        self.lists: dict[Kind, tuple[list[int], list[Any]]] = {
            Kind.STR: self.strs,
            Kind.INT: self.ints,
            Kind.FLOAT: self.floats,
            Kind.BOOL: self.bools,
        }

    def code(self, value: str) -> int:
        """The dictionary code of ``value``, adding it if new."""
        code = self.index.get(value)
        if code is None:
            code = self.index[value] = len(self.strings)
            self.strings.append(value)
        return code

    def add(self, kind: Kind, row: int, value: Any) -> None:
        entry = self.lists.get(kind)
        if entry is None:
            entry = self.lists[kind] = ([], [])
        entry[0].append(row)
        entry[1].append(self.code(value) if kind is Kind.STR or kind is Kind.ELEM_STR else value)

    def add_value(self, row: int, value: Any) -> None:
        """Stage any non-dict value (the generic path)."""
        kind, norm = classify_scalar(value)
        if kind is Kind.ARRAY:
            self.add(Kind.ARRAY, row, None)
            for element in norm:
                classified = classify_element(element)
                if classified is not None:
                    self.add(classified[0], row, classified[1])
        else:
            self.add(kind, row, norm)

    def commit(self) -> None:
        self.column.strings.added()
        for kind, (rows, values) in self.lists.items():
            if not rows:
                continue
            part = self.column.parts.get(kind)
            if part is None:
                part = self.column.parts[kind] = Part.empty(kind)
            part.extend(rows, None if value_dtype(kind) is None else values)


class MetadataColumns:
    """The filter columns of one segment (or of the growing memtable).

    Row ``i`` is the ``i``-th metadata dict given to :meth:`build`/:meth:`append`. Cost:
    build/append are O(total fields of the batch); masks never loop over rows in Python.
    """

    __slots__ = ("_columns", "_rows")

    def __init__(self) -> None:
        """An empty set of columns with zero rows."""
        self._rows = 0
        self._columns: dict[str, Column] = {}

    @classmethod
    def build(cls, metadatas: Sequence[dict[str, Any] | None]) -> MetadataColumns:
        """Columns for ``metadatas`` (``None`` or a non-dict entry means ``{}``)."""
        columns = cls()
        columns.append(metadatas)
        return columns

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> MetadataColumns:
        """Decode :meth:`to_bytes` output. Zero-copy where possible: the result may keep
        views of ``buf``, which must then stay unchanged. Raises ``ValueError`` on any
        malformed payload; never reads outside ``buf`` or allocates more than O(len(buf))."""
        from keeldb.filtering.payload import decode

        return decode(buf)

    @classmethod
    def _from_parts(cls, rows: int, columns: dict[str, Column]) -> MetadataColumns:
        result = cls()
        result._rows = rows
        result._columns = columns
        return result

    def __len__(self) -> int:
        return self._rows

    def __repr__(self) -> str:
        return f"MetadataColumns(rows={self._rows}, paths={len(self._columns)})"

    def column(self, path: str) -> Column | None:
        """The column at dotted ``path``, or ``None`` if no row has it."""
        return self._columns.get(path)

    def paths(self) -> list[str]:
        """Every dotted path present in some row, sorted."""
        return sorted(self._columns)

    @property
    def nbytes(self) -> int:
        """Estimated memory held (arrays at capacity, dictionaries approximately)."""
        return sum(c.nbytes for c in self._columns.values()) + 64 * len(self._columns)

    def to_bytes(self) -> bytes:
        """The versioned little-endian payload (docs/filtering.md, "Column file payload")."""
        from keeldb.filtering.payload import encode

        return encode(self._rows, self._columns)

    def append(self, metadatas: Sequence[dict[str, Any] | None]) -> None:
        """Append one row per entry (``None`` or a non-dict means ``{}``).

        Amortised O(fields in the batch + paths touched); never O(rows already held).
        Raises ``ValueError`` (before changing anything) if the total would exceed
        :data:`MAX_ROWS`.
        """
        base = self._rows
        if base + len(metadatas) > MAX_ROWS:
            raise ValueError(f"too many rows: at most {MAX_ROWS} per set of columns")
        staged: dict[str, _Staging] = {}
        for row, metadata in enumerate(metadatas, base):
            if metadata and isinstance(metadata, dict):
                self._stage_object(staged, "", metadata, row, 1)
        for staging in staged.values():
            staging.commit()
        self._rows = base + len(metadatas)

    def _staging(self, staged: dict[str, _Staging], path: str) -> _Staging:
        column = self._columns.get(path)
        if column is None:
            column = self._columns[path] = Column(path)
        staging = staged[path] = _Staging(column)
        return staging

    def _stage_object(
        self, staged: dict[str, _Staging], prefix: str, obj: dict[Any, Any], row: int, depth: int
    ) -> None:
        # Hot loop: one iteration per field of every row. Common types are handled inline;
        # the rest goes through values.classify_scalar, which defines the semantics.
        get = staged.get
        for key, value in obj.items():
            if type(key) is not str and not isinstance(key, str):
                continue
            path = prefix + key if prefix else key
            staging = get(path)
            if staging is None:
                staging = self._staging(staged, path)
            elif staging.last_row == row:
                # The same path twice in one row ({"a.b": 1, "a": {"b": 2}}): the first
                # value wins, but a nested object's own children are still visited,
                # exactly as values.flatten does.
                if isinstance(value, dict) and depth < MAX_METADATA_DEPTH:
                    self._stage_object(staged, path + ".", value, row, depth + 1)
                continue
            staging.last_row = row
            t = type(value)
            if t is str:
                entry = staging.strs
                code = staging.index.get(value)
                entry[1].append(staging.code(value) if code is None else code)
            elif t is int and INT64_MIN <= value <= INT64_MAX:
                entry = staging.ints
                entry[1].append(value)
            elif t is float:
                entry = staging.floats
                entry[1].append(value)
            elif t is bool:
                entry = staging.bools
                entry[1].append(value)
            elif isinstance(value, dict):
                staging.add(Kind.OBJECT, row, None)
                if depth < MAX_METADATA_DEPTH:
                    self._stage_object(staged, path + ".", value, row, depth + 1)
                continue
            else:
                staging.add_value(row, value)
                continue
            entry[0].append(row)


# Sanity: the element kinds all have values, so "has values" == "dtype is not None".
assert all(value_dtype(k) is not None for k in ELEMENT_KINDS)
