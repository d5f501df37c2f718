"""The compiled form of a filter: a small immutable tree built by :mod:`.parse`.

Literal values in the tree are already validated: scalars are ``str``, ``bool``, finite
``float``, ``int`` inside the int64 range, or ``None``; ``$in``/``$nin`` hold tuples of such
scalars; ``$exists`` holds a bool; ``$contains`` a non-null scalar.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["And", "Cond", "DocCond", "MatchAll", "Node", "Not", "Op", "Or"]


class Op(Enum):
    """A field operator. The value is its spelling in filters."""

    EQ = "$eq"
    NE = "$ne"
    GT = "$gt"
    GTE = "$gte"
    LT = "$lt"
    LTE = "$lte"
    IN = "$in"
    NIN = "$nin"
    EXISTS = "$exists"
    CONTAINS = "$contains"


RANGE_OPS = frozenset({Op.GT, Op.GTE, Op.LT, Op.LTE})


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty filter ``{}``: every row matches."""


@dataclass(frozen=True, slots=True)
class And:
    """All children match (at least one child)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one child matches (at least one child)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not match (plain two-valued negation: a row missing the field
    matches ``$not`` of any condition that the missing field fails)."""

    child: Node


@dataclass(frozen=True, slots=True)
class Cond:
    """One operator applied to the field at dotted ``path``."""

    path: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class DocCond:
    """A condition on the record's document (issue 14), not on its metadata:

    - ``kind == "contains"``: the document contains ``value`` as a substring
      (case-sensitive, code points; a row without a document never matches);
    - ``kind == "text"``: the document holds every term of ``value`` once both are
      analysed with the collection's analyser (as BM25 does); a ``value`` without terms
      matches nothing.
    """

    kind: str
    value: str


Node = MatchAll | And | Or | Not | Cond | DocCond
