"""Document filters per unit: the :class:`~keeldb.filtering.mask.DocumentSource` of a
memtable or a segment, answering ``$contains`` and ``$text`` as whole-unit masks.

* ``$text``: the unit's full-text postings (its part of the derived text index,
  :mod:`keeldb.engine.text_index`): the query is analysed once with the collection's
  analyser (cached per analyser and query), each distinct term's posting list is looked
  up, and a row matches when it is in all of them (a ``bincount`` over the concatenated
  lists — one term's list holds a row at most once). Cost: the terms' posting lists,
  not the unit's rows.
* ``$contains``: a scan of the unit's documents in C. A segment searches its mapped
  ``.docs`` blob (UTF-8) for the needle's UTF-8 bytes — a UTF-8 substring match is a
  code-point substring match — and after a hit skips to the next document, so Python
  runs once per *matching* row; a match spanning two documents is discarded. A memtable
  runs ``str.__contains__`` over its documents through ``map`` (no Python per row).

A segment's masks are cached by its filter cache (documents never change); a memtable's
are computed per search, over the rows its filter columns cover.
"""

from __future__ import annotations

import functools
import operator
from itertools import repeat
from typing import Any, cast

import numpy as np

from keeldb.storage.text_files import DocumentsTable
from keeldb.text.postings import PostingsUnit

__all__ = ["MemtableDocuments", "SegmentDocuments", "all_terms_mask"]

TEXT = "text"  # the full-text index's name (engine/text_index.py)


@functools.lru_cache(maxsize=256)
def _terms(analyzer: Any, query: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(analyzer(query)))


def all_terms_mask(postings: PostingsUnit, terms: tuple[str, ...], n: int) -> np.ndarray:
    """``bool[n]``: rows (below ``n``) holding every one of the distinct ``terms``; none
    when ``terms`` is empty."""
    out = np.zeros(n, dtype=bool)
    if not terms:
        return out
    lists = postings.lookup(list(terms))
    if any(len(rows) == 0 for rows, _ in lists):
        return out
    if len(lists) == 1:
        rows = lists[0][0].astype(np.intp)
        out[rows[rows < n]] = True
        return out
    rows = np.concatenate([r for r, _ in lists]).astype(np.intp)
    counts = np.bincount(rows[rows < n], minlength=n)[:n]
    np.equal(counts, len(terms), out=out)
    return out


class MemtableDocuments:
    """Document conditions over a memtable's first rows (its documents list and its
    postings part)."""

    def __init__(self, documents: list[str | None], parts: dict[str, Any]) -> None:
        self._documents = documents
        self._part = parts.get(TEXT)

    def contains(self, needle: str, n: int) -> np.ndarray:
        """Rows below ``n`` whose document contains ``needle``."""
        docs = self._documents[:n]
        out = np.zeros(n, dtype=bool)
        present = np.fromiter(map(operator.is_not, docs, repeat(None)), dtype=np.bool_, count=n)
        texts = cast(list[str], list(filter(functools.partial(operator.is_not, None), docs)))
        hits = np.fromiter(
            map(str.__contains__, texts, repeat(needle)), dtype=np.bool_, count=len(texts)
        )
        out[present] = hits
        return out

    def text(self, query: str, n: int) -> np.ndarray:
        """Rows below ``n`` holding every analysed term of ``query``."""
        if self._part is None:
            return np.zeros(n, dtype=bool)
        return all_terms_mask(self._part.unit, _terms(self._part.analyzer, query), n)


class SegmentDocuments:
    """Document conditions over a sealed segment (its ``.docs`` table and postings)."""

    def __init__(self, table: DocumentsTable | None, parts: dict[str, Any]) -> None:
        self._table = table
        self._part = parts.get(TEXT)

    def contains(self, needle: str, n: int) -> np.ndarray:
        """Rows whose document contains ``needle``."""
        if self._table is None:
            return np.zeros(n, dtype=bool)
        out = self._table.find_rows(needle.encode())
        assert len(out) == n
        return out

    def text(self, query: str, n: int) -> np.ndarray:
        """Rows holding every analysed term of ``query``."""
        if self._part is None:
            return np.zeros(n, dtype=bool)
        return all_terms_mask(self._part.unit, _terms(self._part.analyzer, query), n)
