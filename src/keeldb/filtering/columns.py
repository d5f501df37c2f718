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

from keeldb.filtering.parts import (  # re-exported: the columns' storage pieces
    MAX_ROWS,
    Column,
    Part,
    Strings,
    value_dtype,
)
from keeldb.filtering.payload import decode, encode
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
        rows, columns = decode(buf)
        return cls._from_parts(rows, columns)

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
