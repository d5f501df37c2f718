"""Metadata values as filters see them: kinds, number normalisation, path flattening.

This module is the single definition of "what is the value of path P in row R" shared by
the column builder (:mod:`keeldb.filtering.columns`) and the reference evaluator
(:meth:`Filter.matches`), so both see exactly the same field states.

Rules (see docs/filtering.md, "Metadata values"):

* Nested objects are flattened to dotted paths: ``{"a": {"b": 1}}`` has ``a`` (an object)
  and ``a.b`` (the int 1). Keys that are not strings are ignored. When two keys produce the
  same path (``{"a.b": 1, "a": {"b": 2}}``) the first one in depth-first key order wins.
* Objects nested deeper than :data:`MAX_METADATA_DEPTH` are recorded as objects but their
  children are not indexed.
* ``bool`` is its own kind (never a number). ``int`` values outside the signed 64-bit range
  are stored and compared as float64 (rounded; beyond the float range, as +-inf).
* Lists and tuples are arrays: their bool/int/float/str elements are searchable with
  ``$contains``; null, object and array elements are ignored.
* Any other Python type (bytes, datetime, numpy scalars ...) counts as a present value of
  an unsupported kind (:attr:`Kind.OBJECT`): it satisfies ``$exists: true``, ``$ne`` and
  ``$nin`` and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from enum import IntEnum
from typing import Any

__all__ = [
    "ELEMENT_KINDS",
    "INT64_MAX",
    "INT64_MIN",
    "MAX_METADATA_DEPTH",
    "SCALAR_KINDS",
    "SCALAR_OF_ELEMENT",
    "Kind",
    "classify_element",
    "classify_scalar",
    "flatten",
    "iter_fields",
    "normalize_int",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_METADATA_DEPTH = 32


class Kind(IntEnum):
    """The state of one path in one row. The numbers are stored in the column payload
    (docs/filtering.md, "Column file payload") and must never change."""

    NULL = 1
    BOOL = 2
    INT = 3
    FLOAT = 4
    STR = 5
    ARRAY = 6
    OBJECT = 7
    # Elements of arrays: one entry per element, the row repeated for each.
    ELEM_BOOL = 8
    ELEM_INT = 9
    ELEM_FLOAT = 10
    ELEM_STR = 11


# Kinds with at most one entry per row; a row has at most one of them per path.
SCALAR_KINDS = frozenset(
    {Kind.NULL, Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.STR, Kind.ARRAY, Kind.OBJECT}
)
ELEMENT_KINDS = frozenset({Kind.ELEM_BOOL, Kind.ELEM_INT, Kind.ELEM_FLOAT, Kind.ELEM_STR})
# The scalar kind an array element of each ELEM_* kind compares like.
SCALAR_OF_ELEMENT = {
    Kind.ELEM_BOOL: Kind.BOOL,
    Kind.ELEM_INT: Kind.INT,
    Kind.ELEM_FLOAT: Kind.FLOAT,
    Kind.ELEM_STR: Kind.STR,
}


def normalize_int(value: int) -> int | float:
    """Return ``value`` unchanged inside the int64 range, else its float64 rounding
    (``+-inf`` when even float64 cannot hold it)."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def classify_scalar(value: Any) -> tuple[Kind, Any]:
    """Classify a non-dict metadata value: ``(kind, normalised value)``.

    Lists/tuples come back as ``(Kind.ARRAY, value)`` untouched; unsupported types as
    ``(Kind.OBJECT, None)``.
    """
    t = type(value)
    if t is str:
        return Kind.STR, value
    if t is bool:
        return Kind.BOOL, value
    if t is int:
        if INT64_MIN <= value <= INT64_MAX:
            return Kind.INT, value
        return Kind.FLOAT, normalize_int(value)
    if t is float:
        return Kind.FLOAT, value
    if value is None:
        return Kind.NULL, None
    if t is list or t is tuple:
        return Kind.ARRAY, value
    # Subclasses (IntEnum, str enums, float subclasses such as numpy.float64).
    if isinstance(value, bool):
        return Kind.BOOL, bool(value)
    if isinstance(value, int):
        norm = normalize_int(int(value))
        return (Kind.INT if type(norm) is int else Kind.FLOAT), norm
    if isinstance(value, float):
        return Kind.FLOAT, float(value)
    if isinstance(value, str):
        return Kind.STR, str(value)
    if isinstance(value, list | tuple):
        return Kind.ARRAY, value
    return Kind.OBJECT, None


def classify_element(value: Any) -> tuple[Kind, Any] | None:
    """Classify one array element: ``(ELEM_* kind, normalised value)`` or ``None`` when
    the element is ignored (null, object, array, unsupported type)."""
    kind, norm = classify_scalar(value)
    if kind is Kind.STR:
        return Kind.ELEM_STR, norm
    if kind is Kind.BOOL:
        return Kind.ELEM_BOOL, norm
    if kind is Kind.INT:
        return Kind.ELEM_INT, norm
    if kind is Kind.FLOAT:
        return Kind.ELEM_FLOAT, norm
    return None


def iter_fields(metadata: dict[Any, Any]) -> Iterator[tuple[str, Any]]:
    """Yield ``(path, value)`` for every field of ``metadata`` in depth-first key order.

    A nested dict yields ``(path, <the dict>)`` before its children; the caller treats a
    dict value as :attr:`Kind.OBJECT`. Duplicated paths are *not* removed here (see
    :func:`flatten`). Iterative, so absurdly deep metadata cannot exhaust the stack.
    """
    stack: list[tuple[str, Iterator[tuple[Any, Any]], int]] = [("", iter(metadata.items()), 1)]
    while stack:
        prefix, items, depth = stack[-1]
        for key, value in items:
            if type(key) is not str and not isinstance(key, str):
                continue
            path = prefix + key
            yield path, value
            if isinstance(value, dict) and depth < MAX_METADATA_DEPTH:
                stack.append((path + ".", iter(value.items()), depth + 1))
                break
        else:
            stack.pop()


def flatten(metadata: dict[Any, Any] | None) -> dict[str, tuple[Kind, Any]]:
    """Map every path of ``metadata`` to ``(kind, normalised value)``; first path wins.

    Object values map to ``(Kind.OBJECT, None)``. ``None`` metadata means ``{}``.
    """
    out: dict[str, tuple[Kind, Any]] = {}
    if not metadata:
        return out
    for path, value in iter_fields(metadata):
        if path in out:
            continue
        if isinstance(value, dict):
            out[path] = (Kind.OBJECT, None)
        else:
            out[path] = classify_scalar(value)
    return out
