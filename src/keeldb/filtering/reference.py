"""The pure-Python reference evaluator: one row at a time, written for obviousness.

It defines the semantics (docs/filtering.md, "Semantics"); the vectorised evaluator in
:mod:`.mask` must agree with it on every row, which the property tests check. The engine
also uses it for a handful of rows, where building columns would cost more.
"""

from __future__ import annotations

from typing import Any

from keeldb.filtering.nodes import And, Cond, DocCond, MatchAll, Node, Not, Op, Or
from keeldb.filtering.values import SCALAR_OF_ELEMENT, Kind, classify_element, flatten

__all__ = ["matches"]

_NUMBER_KINDS = (Kind.INT, Kind.FLOAT)


def matches(
    node: Node, metadata: dict[Any, Any] | None, document: str | None = None, analyzer: Any = None
) -> bool:
    """Whether one row's metadata (``None`` means ``{}``) and ``document`` (None: the row
    has none) satisfy the compiled filter; ``$text`` analyses with ``analyzer`` (a
    :class:`keeldb.text.Analyzer`; default: the default analyser)."""
    return _eval(node, flatten(metadata), (document, analyzer))


def _doc(node: DocCond, doc: tuple[str | None, Any]) -> bool:
    document, analyzer = doc
    if document is None:
        return False
    if node.kind == "contains":
        return node.value in document
    if analyzer is None:
        from keeldb.text.analyzer import Analyzer

        analyzer = Analyzer()
    terms = set(analyzer(node.value))
    return bool(terms) and terms <= set(analyzer(document))


def _eval(node: Node, fields: dict[str, tuple[Kind, Any]], doc: tuple[str | None, Any]) -> bool:
    if isinstance(node, Cond):
        return _cond(node, fields.get(node.path))
    if isinstance(node, DocCond):
        return _doc(node, doc)
    if isinstance(node, And):
        return all(_eval(child, fields, doc) for child in node.children)
    if isinstance(node, Or):
        return any(_eval(child, fields, doc) for child in node.children)
    if isinstance(node, Not):
        return not _eval(node.child, fields, doc)
    assert isinstance(node, MatchAll)
    return True


def _same_kind_equal(kind: Kind, value: Any, literal: Any) -> bool:
    """Equality of a stored non-null value with a non-null literal: kinds must agree
    (bool is not a number; int and float are both numbers)."""
    if isinstance(literal, bool):
        return kind is Kind.BOOL and value == literal
    if isinstance(literal, str):
        return kind is Kind.STR and value == literal
    return kind in _NUMBER_KINDS and value == literal


def _equal(field: tuple[Kind, Any] | None, literal: Any) -> bool:
    """``{"f": literal}``: null matches a missing or null field; arrays never equal."""
    if field is None or field[0] is Kind.NULL:
        return literal is None
    if literal is None:
        return False
    return _same_kind_equal(field[0], field[1], literal)


def _cond(cond: Cond, field: tuple[Kind, Any] | None) -> bool:
    op, literal = cond.op, cond.value
    if op is Op.EQ:
        return _equal(field, literal)
    if op is Op.NE:
        return not _equal(field, literal)
    if op is Op.IN:
        return any(_equal(field, v) for v in literal)
    if op is Op.NIN:
        return not any(_equal(field, v) for v in literal)
    if op is Op.EXISTS:
        present = field is not None and field[0] is not Kind.NULL
        return present is literal
    if field is None:
        return False
    kind, value = field
    if op is Op.CONTAINS:
        if kind is not Kind.ARRAY:
            return False
        for element in value:
            classified = classify_element(element)
            if classified is None:
                continue
            elem_kind = SCALAR_OF_ELEMENT[classified[0]]
            if _same_kind_equal(elem_kind, classified[1], literal):
                return True
        return False
    # Range operators: numbers with numbers, strings with strings (code point order).
    if isinstance(literal, str):
        if kind is not Kind.STR:
            return False
    elif kind not in _NUMBER_KINDS:
        return False
    if op is Op.GT:
        return bool(value > literal)
    if op is Op.GTE:
        return bool(value >= literal)
    if op is Op.LT:
        return bool(value < literal)
    assert op is Op.LTE
    return bool(value <= literal)
