"""Validate a filter spec (a dict, or the same JSON over HTTP) and compile it to a tree.

Every malformed filter raises :class:`~keeldb.errors.InvalidArgumentError` whose message
starts with the path of the offending part, e.g. ``filter.$and[1].year.$gt: range
operator needs a number or a string, got bool``. Validation is bounded: it stops at
:data:`MAX_FILTER_DEPTH` levels of nesting and :data:`MAX_FILTER_NODES` nodes, so hostile
input (deep, wide or self-referencing structures) cannot exhaust the stack or the CPU.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

from keeldb.errors import InvalidArgumentError
from keeldb.filtering.nodes import RANGE_OPS, And, Cond, DocCond, MatchAll, Node, Not, Op, Or
from keeldb.filtering.values import INT64_MAX, INT64_MIN

__all__ = [
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_NODES",
    "MAX_IN_VALUES",
    "parse_filter",
]

MAX_FILTER_DEPTH = 32
"""Objects and arrays may nest at most this deep; the filter object itself is level 1."""

MAX_FILTER_NODES = 1000
"""At most this many nodes: every key of every object plus every element of $and/$or."""

MAX_IN_VALUES = 10_000
"""At most this many values in all $in/$nin lists of one filter together."""

_FIELD_OPS = {op.value: op for op in Op}
_COMBINATORS = ("$and", "$or", "$not")
_DOCUMENT_OPS = {"$contains": "contains", "$text": "text"}

MAX_DOCUMENT_QUERY = 10_000
"""Longest ``$contains`` / ``$text`` argument, in characters."""


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fail(path: str, reason: str) -> NoReturn:
    raise InvalidArgumentError(f"{path}: {reason}")


def parse_filter(spec: Any) -> Node:
    """Validate ``spec`` and return its compiled tree.

    ``spec`` must be a dict; ``{}`` matches every row. Raises
    :class:`~keeldb.errors.InvalidArgumentError` naming the path of the first bad part.
    """
    return _Parser().filter(spec, "filter", 1)


class _Parser:
    """One validation pass; counts nodes and $in values across the whole filter."""

    def __init__(self) -> None:
        self.nodes = 0
        self.in_values = 0

    # -- structure -----------------------------------------------------------------------

    def _enter(self, path: str, depth: int) -> None:
        if depth > MAX_FILTER_DEPTH:
            _fail(path, f"filter is nested deeper than {MAX_FILTER_DEPTH} levels")

    def _count(self, path: str) -> None:
        self.nodes += 1
        if self.nodes > MAX_FILTER_NODES:
            _fail(path, f"filter has more than {MAX_FILTER_NODES} nodes")

    def filter(self, spec: Any, path: str, depth: int) -> Node:
        """A filter object: implicit AND of field conditions and combinators."""
        if not isinstance(spec, dict):
            _fail(path, f"a filter must be an object, got {_type_name(spec)}")
        self._enter(path, depth)
        parts: list[Node] = []
        for key, value in spec.items():
            self._count(path)
            if not isinstance(key, str):
                _fail(path, f"keys must be strings, got {_type_name(key)} {_short(key)}")
            key_path = f"{path}.{key}"
            if key.startswith("$"):
                parts.append(self._combinator(key, value, key_path, depth))
            else:
                _check_field_name(key, key_path)
                parts.append(self._field(key, value, key_path, depth))
        if not parts:
            return MatchAll()
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _combinator(self, key: str, value: Any, path: str, depth: int) -> Node:
        if key in _DOCUMENT_OPS:
            return _document(key, value, path)
        if key == "$not":
            return Not(self.filter(value, path, depth + 1))
        if key in ("$and", "$or"):
            if not isinstance(value, list | tuple):
                _fail(path, f"{key} needs a non-empty list of filters, got {_type_name(value)}")
            if not value:
                _fail(path, f"{key} needs a non-empty list of filters, got an empty list")
            self._enter(path, depth + 1)
            children = []
            for i, item in enumerate(value):
                item_path = f"{path}[{i}]"
                self._count(item_path)
                children.append(self.filter(item, item_path, depth + 2))
            if len(children) == 1:
                return children[0]
            return And(tuple(children)) if key == "$and" else Or(tuple(children))
        if key in _FIELD_OPS:
            _fail(
                path,
                f"operator {key} must be applied to a field, e.g. {{'year': {{'{key}': ...}}}}",
            )
        _fail(path, f"unknown operator {_short(key)}")

    def _field(self, field: str, value: Any, path: str, depth: int) -> Node:
        if isinstance(value, dict):
            return self._operators(field, value, path, depth + 1)
        return Cond(field, Op.EQ, self._scalar(value, path, Op.EQ))

    def _operators(self, field: str, ops: dict[Any, Any], path: str, depth: int) -> Node:
        """An operator object such as ``{"$gte": 1, "$lt": 5}`` (implicit AND)."""
        self._enter(path, depth)
        if not ops:
            _fail(path, "empty object: use an operator such as {'$eq': value}")
        for key in ops:
            if not isinstance(key, str):
                _fail(path, f"keys must be strings, got {_type_name(key)} {_short(key)}")
        dollar = [key.startswith("$") for key in ops]
        if not any(dollar):
            _fail(
                path,
                "object values are not supported (values must be scalars); "
                f"to reach a nested field use a dotted path such as '{field}.{next(iter(ops))}'",
            )
        if not all(dollar):
            _fail(path, "cannot mix operators ($...) and field names in one object")
        parts: list[Node] = []
        for key, arg in ops.items():
            self._count(path)
            op_path = f"{path}.{key}"
            if key == "$not":
                if not isinstance(arg, dict):
                    _fail(
                        op_path,
                        f"$not on a field needs an operator object such as {{'$gt': 5}}, "
                        f"got {_type_name(arg)}",
                    )
                parts.append(Not(self._operators(field, arg, op_path, depth + 1)))
                continue
            op = _FIELD_OPS.get(key)
            if op is None:
                if key in _COMBINATORS:
                    _fail(op_path, f"{key} combines filters and cannot be used inside a field")
                _fail(op_path, f"unknown operator {_short(key)}")
            parts.append(Cond(field, op, self._argument(op, arg, op_path, depth + 1)))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    # -- values --------------------------------------------------------------------------

    def _argument(self, op: Op, arg: Any, path: str, depth: int) -> Any:
        if op in (Op.EQ, Op.NE):
            return self._scalar(arg, path, op)
        if op in RANGE_OPS:
            if arg is None or isinstance(arg, bool):
                _fail(
                    path,
                    f"range operator {op.value} needs a number or a string, got {_type_name(arg)}",
                )
            return self._scalar(arg, path, op)
        if op in (Op.IN, Op.NIN):
            if not isinstance(arg, list | tuple):
                _fail(path, f"{op.value} needs a list of values, got {_type_name(arg)}")
            self._enter(path, depth)
            self.in_values += len(arg)
            if self.in_values > MAX_IN_VALUES:
                _fail(path, f"$in/$nin lists hold more than {MAX_IN_VALUES} values in total")
            return tuple(self._scalar(v, f"{path}[{i}]", op) for i, v in enumerate(arg))
        if op is Op.EXISTS:
            if not isinstance(arg, bool):
                _fail(path, f"$exists needs true or false, got {_type_name(arg)}")
            return bool(arg)
        assert op is Op.CONTAINS
        if arg is None:
            _fail(path, "$contains needs a non-null value (use $exists to test for a field)")
        return self._scalar(arg, path, op)

    def _scalar(self, value: Any, path: str, op: Op) -> Any:
        """A literal: str, bool, finite float, int64 int or null; never an array/object."""
        if value is None:
            return None
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                _fail(path, "integer is outside the signed 64-bit range")
            return int(value)
        if isinstance(value, float):
            if not math.isfinite(value):
                _fail(path, f"{value} is not allowed: numbers must be finite")
            return float(value)
        if isinstance(value, list | tuple):
            if op in (Op.EQ, Op.NE):
                _fail(
                    path,
                    f"{op.value} does not compare arrays; use $contains to test whether an "
                    "array holds a value, or $in to match any of several values",
                )
            _fail(path, f"{op.value} needs a scalar value, got array")
        if isinstance(value, dict):
            _fail(path, "object values are not supported (values must be scalars)")
        _fail(path, f"unsupported value type {_type_name(value)}")


def _document(key: str, value: Any, path: str) -> DocCond:
    """A document condition: ``{"$contains": "substring"}`` or ``{"$text": "terms"}``."""
    if not isinstance(value, str):
        _fail(path, f"{key} on the document needs a string, got {_type_name(value)}")
    if not value:
        _fail(path, f"{key} needs a non-empty string")
    if len(value) > MAX_DOCUMENT_QUERY:
        _fail(path, f"{key} argument is longer than {MAX_DOCUMENT_QUERY} characters")
    return DocCond(_DOCUMENT_OPS[key], value)


def _check_field_name(name: str, path: str) -> None:
    if not name:
        _fail(path, "field name must not be empty")
    if name.startswith(".") or name.endswith(".") or ".." in name:
        _fail(path, f"field path {_short(name)} has an empty segment")
