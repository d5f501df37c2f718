"""The public :class:`Filter` object and :func:`compile_filter`."""

from __future__ import annotations

from typing import Any

import numpy as np

from keeldb.filtering.columns import MetadataColumns
from keeldb.filtering.mask import DocumentSource, compute_mask
from keeldb.filtering.nodes import And, Cond, DocCond, MatchAll, Node, Not, Or
from keeldb.filtering.parse import parse_filter
from keeldb.filtering.reference import matches

__all__ = ["Filter", "compile_filter"]


def compile_filter(spec: Any) -> Filter:
    """Validate a filter spec (a dict; ``{}`` matches every row) and compile it.

    Raises :class:`~keeldb.errors.InvalidArgumentError` whose message begins with the
    path of the offending part, e.g. ``filter.$and[1].year.$gt: ...``. The spec is not
    retained: later changes to it do not affect the compiled filter.
    """
    return Filter(parse_filter(spec))


class Filter:
    """A validated, compiled filter. Immutable and safe to share between threads."""

    __slots__ = ("_root",)

    def __init__(self, root: Node) -> None:
        """Wrap a compiled tree; use :func:`compile_filter` rather than calling this."""
        self._root = root

    @property
    def root(self) -> Node:
        """The compiled tree (see :mod:`keeldb.filtering.nodes`)."""
        return self._root

    @property
    def matches_all(self) -> bool:
        """True for the empty filter ``{}``, which every row satisfies."""
        return isinstance(self._root, MatchAll)

    @property
    def paths(self) -> frozenset[str]:
        """The dotted paths the filter reads."""
        found: set[str] = set()
        stack: list[Node] = [self._root]
        while stack:
            node = stack.pop()
            if isinstance(node, Cond):
                found.add(node.path)
            elif isinstance(node, And | Or):
                stack.extend(node.children)
            elif isinstance(node, Not):
                stack.append(node.child)
        return frozenset(found)

    @property
    def uses_documents(self) -> bool:
        """Whether the filter has a document condition (``$contains`` / ``$text``)."""
        stack: list[Node] = [self._root]
        while stack:
            node = stack.pop()
            if isinstance(node, DocCond):
                return True
            if isinstance(node, And | Or):
                stack.extend(node.children)
            elif isinstance(node, Not):
                stack.append(node.child)
        return False

    def mask(self, columns: MetadataColumns, docs: DocumentSource | None = None) -> np.ndarray:
        """A fresh ``bool`` array of ``len(columns)``: True where the row matches.

        Vectorised (no Python work per row); agrees with :meth:`matches` on every row.
        ``docs`` (the unit's documents) answers document conditions; without it a filter
        holding one raises InvalidArgumentError.
        """
        return compute_mask(self._root, columns, docs)

    def matches(
        self, metadata: dict[str, Any] | None, document: str | None = None, analyzer: Any = None
    ) -> bool:
        """Whether one row's metadata (``None`` means ``{}``) and document match. The
        reference semantics; cheap for a few rows, slow for many (use :meth:`mask`)."""
        meta = metadata if isinstance(metadata, dict) else None
        return matches(self._root, meta, document, analyzer)

    def __repr__(self) -> str:
        return f"Filter({self._root!r})"
