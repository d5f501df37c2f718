"""The vectorised evaluator: a compiled filter and typed columns -> a boolean row mask.

Work per condition is a few numpy passes over the parts of one column (no Python per row).
Semantics must equal :mod:`.reference` exactly, including exact int/float comparison:
int64 values are compared as integers and float64 values as floats, with the literal
converted so that no precision is lost (see :func:`_int_compare`, :func:`_float_compare`).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from typing import Any, Protocol

import numpy as np

from keeldb.errors import InvalidArgumentError
from keeldb.filtering.columns import Column, MetadataColumns, Part
from keeldb.filtering.nodes import And, Cond, DocCond, MatchAll, Node, Not, Op, Or
from keeldb.filtering.values import INT64_MAX, INT64_MIN, Kind

__all__ = ["DocumentSource", "compute_mask"]

_PRESENT_KINDS = (Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.STR, Kind.ARRAY, Kind.OBJECT)
_CMP = {
    Op.EQ: np.equal,
    Op.GT: np.greater,
    Op.GTE: np.greater_equal,
    Op.LT: np.less,
    Op.LTE: np.less_equal,
}


class DocumentSource(Protocol):
    """The documents of one unit, for document conditions (:class:`DocCond`); the
    engine supplies one per unit (:mod:`keeldb.engine.doc_filter`)."""

    def contains(self, needle: str, n: int) -> np.ndarray:
        """``bool[n]``: rows whose document contains ``needle`` (fresh array)."""
        ...

    def text(self, query: str, n: int) -> np.ndarray:
        """``bool[n]``: rows whose document holds every analysed term of ``query``."""
        ...


def compute_mask(
    node: Node, columns: MetadataColumns, docs: DocumentSource | None = None
) -> np.ndarray:
    """``bool[len(columns)]``, True where the row satisfies ``node``. Freshly allocated.
    ``docs`` answers document conditions (InvalidArgumentError when one is met
    without it)."""
    n = len(columns)
    if isinstance(node, Cond):
        return _cond(node, columns.column(node.path), n)
    if isinstance(node, DocCond):
        if docs is None:
            raise InvalidArgumentError(
                "document filters ($contains, $text) apply to a collection's documents only"
            )
        if node.kind == "contains":
            return docs.contains(node.value, n)
        return docs.text(node.value, n)
    if isinstance(node, And | Or):
        out = compute_mask(node.children[0], columns, docs)
        combine = np.logical_and if isinstance(node, And) else np.logical_or
        for child in node.children[1:]:
            combine(out, compute_mask(child, columns, docs), out=out)
        return out
    if isinstance(node, Not):
        out = compute_mask(node.child, columns, docs)
        return _invert(out)
    assert isinstance(node, MatchAll)
    return np.ones(n, dtype=np.bool_)


def _invert(mask: np.ndarray) -> np.ndarray:
    """Negate ``mask`` in place and return it."""
    np.logical_not(mask, out=mask)
    return mask


# -- scattering part-level selections into row masks ---------------------------------------


def _scatter(out: np.ndarray, part: Part, selected: np.ndarray | None) -> None:
    """Set ``out[row] = True`` for the part's entries where ``selected`` (all if None)."""
    rows = part.rows
    if rows.shape[0] == out.shape[0] and part.kind not in _ELEMENT:
        # Strictly increasing rows covering every row: entry i is row i.
        if selected is None:
            out[:] = True
        else:
            np.logical_or(out, selected, out=out)
        return
    out[rows if selected is None else rows[selected]] = True


_ELEMENT = frozenset({Kind.ELEM_BOOL, Kind.ELEM_INT, Kind.ELEM_FLOAT, Kind.ELEM_STR})


def _present(column: Column | None, n: int) -> np.ndarray:
    """Rows where the path holds a non-null value."""
    out = np.zeros(n, dtype=np.bool_)
    if column is not None:
        for kind in _PRESENT_KINDS:
            part = column.part(kind)
            if part is not None:
                _scatter(out, part, None)
    return out


# -- exact number comparison ---------------------------------------------------------------


def _int_threshold(values: np.ndarray, op: Op, threshold: int) -> np.ndarray:
    """``values <op> threshold`` for int64 ``values`` and any Python int ``threshold``."""
    if threshold > INT64_MAX or threshold < INT64_MIN:
        above = threshold > INT64_MAX  # every value is below the threshold
        result = op in (Op.LT, Op.LTE) if above else op in (Op.GT, Op.GTE)
        return np.full(values.shape[0], result, dtype=np.bool_)
    return np.asarray(_CMP[op](values, np.int64(threshold)))


def _int_compare(values: np.ndarray, op: Op, literal: int | float) -> np.ndarray:
    """Exact ``values <op> literal`` for int64 ``values`` (as Python compares int/float)."""
    if isinstance(literal, int) or literal.is_integer():
        return _int_threshold(values, op, int(literal))
    # A non-integral literal: no int equals it; compare against its floor or ceiling.
    if op is Op.EQ:
        return np.zeros(values.shape[0], dtype=np.bool_)
    if op in (Op.GT, Op.GTE):
        return _int_threshold(values, Op.GT, math.floor(literal))
    return _int_threshold(values, Op.LT, math.ceil(literal))


def _float_compare(values: np.ndarray, op: Op, literal: int | float) -> np.ndarray:
    """Exact ``values <op> literal`` for float64 ``values`` (as Python compares them)."""
    if isinstance(literal, float):
        return np.asarray(_CMP[op](values, literal))
    rounded = float(literal)  # literal is inside int64, so this cannot overflow
    if int(rounded) == literal:
        return np.asarray(_CMP[op](values, rounded))
    # ``rounded`` is the float nearest to ``literal``, so a float below/above ``rounded``
    # is below/above ``literal`` too; a float equal to ``rounded`` is on the same side of
    # ``literal`` as ``rounded`` itself, and never equal to it.
    rounded_above = int(rounded) > literal
    if op is Op.EQ:
        return np.zeros(values.shape[0], dtype=np.bool_)
    if op in (Op.GT, Op.GTE):
        return np.asarray(values >= rounded if rounded_above else values > rounded)
    return np.asarray(values < rounded if rounded_above else values <= rounded)


def _exact_int(literal: int | float) -> int | None:
    """The int64 an int value must hold to equal ``literal``, if any."""
    if isinstance(literal, int):
        return literal
    if literal.is_integer() and INT64_MIN <= int(literal) <= INT64_MAX:
        return int(literal)
    return None


def _exact_float(literal: int | float) -> float | None:
    """The float64 a float value must hold to equal ``literal``, if any."""
    if isinstance(literal, float):
        return literal
    rounded = float(literal)
    return rounded if int(rounded) == literal else None


# -- conditions -----------------------------------------------------------------------------


def _is_number(literal: Any) -> bool:
    return isinstance(literal, int | float) and not isinstance(literal, bool)


def _equal_into(out: np.ndarray, column: Column, literal: Any, elements: bool) -> None:
    """OR into ``out`` the rows whose value (or, with ``elements``, some array element)
    equals the non-null ``literal``."""
    kinds = (
        (Kind.ELEM_BOOL, Kind.ELEM_INT, Kind.ELEM_FLOAT, Kind.ELEM_STR)
        if elements
        else (Kind.BOOL, Kind.INT, Kind.FLOAT, Kind.STR)
    )
    bool_kind, int_kind, float_kind, str_kind = kinds
    if isinstance(literal, bool):
        part = column.part(bool_kind)
        if part is not None:
            values = part.values
            _scatter(out, part, values if literal else ~values)
    elif isinstance(literal, str):
        part = column.part(str_kind)
        codes = column.strings.codes(literal) if part is not None else []
        if part is not None and codes:
            if len(codes) == 1:
                _scatter(out, part, part.values == codes[0])
            else:
                _scatter(out, part, np.isin(part.values, codes))
    else:
        part = column.part(int_kind)
        if part is not None:
            _scatter(out, part, _int_compare(part.values, Op.EQ, literal))
        part = column.part(float_kind)
        if part is not None:
            _scatter(out, part, _float_compare(part.values, Op.EQ, literal))


def _equal(column: Column | None, literal: Any, n: int) -> np.ndarray:
    if literal is None:  # null equals a missing or null field
        return _invert(_present(column, n))
    out = np.zeros(n, dtype=np.bool_)
    if column is not None:
        _equal_into(out, column, literal, elements=False)
    return out


def _any_of(column: Column | None, literals: tuple[Any, ...], n: int) -> np.ndarray:
    """``$in``: one pass per kind, not one per literal."""
    out = _invert(_present(column, n)) if None in literals else np.zeros(n, np.bool_)
    if column is None:
        return out
    numbers = [v for v in literals if _is_number(v)]
    ints = {i for i in map(_exact_int, numbers) if i is not None}
    floats = {f for f in map(_exact_float, numbers) if f is not None}
    bools = {v for v in literals if isinstance(v, bool)}
    strings = [v for v in literals if isinstance(v, str)]
    part = column.part(Kind.INT)
    if part is not None and ints:
        _scatter(out, part, np.isin(part.values, np.array(sorted(ints), dtype=np.int64)))
    part = column.part(Kind.FLOAT)
    if part is not None and floats:
        _scatter(out, part, np.isin(part.values, np.array(sorted(floats), dtype=np.float64)))
    part = column.part(Kind.BOOL)
    if part is not None and bools:
        values = part.values
        _scatter(out, part, None if len(bools) == 2 else (values if True in bools else ~values))
    part = column.part(Kind.STR)
    if part is not None and strings:
        wanted = np.zeros(len(column.strings), dtype=np.bool_)
        for s in strings:
            wanted[column.strings.codes(s)] = True
        _scatter(out, part, wanted[part.values])
    return out


def _range(column: Column, op: Op, literal: Any, n: int) -> np.ndarray:
    """``$gt``/``$gte``/``$lt``/``$lte``: numbers with numbers, strings with strings."""
    out = np.zeros(n, dtype=np.bool_)
    if isinstance(literal, str):
        part = column.part(Kind.STR)
        if part is not None:
            rank, ordered = column.strings.order()
            if op is Op.GT:
                ok = rank >= bisect_right(ordered, literal)
            elif op is Op.GTE:
                ok = rank >= bisect_left(ordered, literal)
            elif op is Op.LT:
                ok = rank < bisect_left(ordered, literal)
            else:
                ok = rank < bisect_right(ordered, literal)
            _scatter(out, part, ok[part.values])
        return out
    part = column.part(Kind.INT)
    if part is not None:
        _scatter(out, part, _int_compare(part.values, op, literal))
    part = column.part(Kind.FLOAT)
    if part is not None:
        _scatter(out, part, _float_compare(part.values, op, literal))
    return out


def _cond(cond: Cond, column: Column | None, n: int) -> np.ndarray:
    op, literal = cond.op, cond.value
    if op is Op.EQ:
        return _equal(column, literal, n)
    if op is Op.NE:
        out = _equal(column, literal, n)
        return _invert(out)
    if op is Op.IN:
        return _any_of(column, literal, n)
    if op is Op.NIN:
        out = _any_of(column, literal, n)
        return _invert(out)
    if op is Op.EXISTS:
        out = _present(column, n)
        return out if literal else _invert(out)
    if column is None:
        return np.zeros(n, dtype=np.bool_)
    if op is Op.CONTAINS:
        out = np.zeros(n, dtype=np.bool_)
        _equal_into(out, column, literal, elements=True)
        return out
    return _range(column, op, literal, n)
