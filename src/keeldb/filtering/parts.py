"""The storage pieces of filter columns: :class:`Part` (one kind of value at one path),
:class:`Strings` (a column's string dictionary) and :class:`Column` (everything at one
path). Shared by :mod:`keeldb.filtering.columns` (building, masks) and
:mod:`keeldb.filtering.payload` (the byte encoding), which import this module and not
each other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from keeldb.filtering.values import Kind

__all__ = ["MAX_ROWS", "Column", "Part", "Strings", "value_dtype"]

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
