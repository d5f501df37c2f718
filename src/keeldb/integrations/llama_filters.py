"""LlamaIndex ``MetadataFilters`` → KeelDB filters (``docs/filtering.md``).

Every ``FilterOperator`` KeelDB can express exactly is translated; the others raise
:class:`~keeldb.errors.InvalidArgumentError` naming the operator, never an approximation
that would return other records than LlamaIndex's own semantics
(``llama_index.core.vector_stores.utils.build_metadata_filter_fn``).

==========================  =====================================================
LlamaIndex                  KeelDB
==========================  =====================================================
``EQ`` / ``NE``             ``$eq`` / ``$ne``
``GT`` ``GTE`` ``LT`` ``LTE``  ``$gt`` ``$gte`` ``$lt`` ``$lte``
``IN`` / ``NIN``            ``$in`` / ``$nin``
``CONTAINS``                ``$contains`` (an array field holds the value)
``ANY`` / ``ALL``           ``$or`` / ``$and`` of ``$contains``, one per value
``TEXT_MATCH``,             refused: KeelDB filters have no substring match
``TEXT_MATCH_INSENSITIVE``
``IS_EMPTY``                refused: KeelDB cannot tell an empty array from a full one
condition ``AND`` / ``OR``  ``$and`` / ``$or``
condition ``NOT``           ``$not`` of ``$or`` (none of the filters holds)
==========================  =====================================================

Nested ``MetadataFilters`` are translated recursively. A node without the field matches
``NE`` and ``NIN`` (and never the others), as in LlamaIndex since 0.14.23 and in KeelDB.
"""

from __future__ import annotations

from typing import Any

from keeldb.errors import InvalidArgumentError

__all__ = ["to_keeldb_filter"]

_SIMPLE = {
    "==": "$eq",
    "!=": "$ne",
    ">": "$gt",
    ">=": "$gte",
    "<": "$lt",
    "<=": "$lte",
    "in": "$in",
    "nin": "$nin",
    "contains": "$contains",
}


def _one(key: str, operator: str, value: Any) -> dict[str, Any]:
    if operator in _SIMPLE:
        if operator in ("in", "nin") and not isinstance(value, list):
            value = [value]
        return {key: {_SIMPLE[operator]: value}}
    if operator in ("any", "all"):
        values = value if isinstance(value, list) else [value]
        if not values:  # any of nothing holds never; all of nothing always
            return {key: {"$in": []}} if operator == "any" else {}
        parts = [{key: {"$contains": v}} for v in values]
        return {"$or": parts} if operator == "any" else {"$and": parts}
    if operator in ("text_match", "text_match_insensitive"):
        raise InvalidArgumentError(
            f"FilterOperator {operator!r} (substring match) has no KeelDB filter; "
            "use a text or hybrid query for full-text matching"
        )
    if operator == "is_empty":
        raise InvalidArgumentError(
            "FilterOperator 'is_empty' cannot be expressed exactly in KeelDB filters "
            "(empty arrays are not distinguishable); use {'$exists': False} via "
            "a raw KeelDB filter for missing-or-null"
        )
    raise InvalidArgumentError(f"unsupported FilterOperator {operator!r}")


def to_keeldb_filter(filters: Any) -> dict[str, Any] | None:
    """The KeelDB filter equivalent to LlamaIndex ``filters`` (a ``MetadataFilters``),
    or None for None / no filters. Raises ``InvalidArgumentError`` for an operator or a
    condition KeelDB cannot express exactly (see the module docstring)."""
    if filters is None or not filters.filters:
        return None
    parts: list[dict[str, Any]] = []
    for f in filters.filters:
        if hasattr(f, "filters"):  # nested MetadataFilters
            sub = to_keeldb_filter(f)
            parts.append(sub if sub is not None else {})
        else:
            parts.append(_one(f.key, _value_of(f.operator), f.value))
    condition = _value_of(filters.condition) if filters.condition is not None else "and"
    if condition == "and":
        return parts[0] if len(parts) == 1 else {"$and": parts}
    if condition == "or":
        return {"$or": parts}
    if condition == "not":
        return {"$not": {"$or": parts}}
    raise InvalidArgumentError(f"unsupported FilterCondition {condition!r}")


def _value_of(enum_or_str: Any) -> str:
    return str(getattr(enum_or_str, "value", enum_or_str))
