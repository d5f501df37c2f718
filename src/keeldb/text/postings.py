"""Per-unit BM25 postings: a growing one for the memtable, an immutable one per segment.

Both kinds implement :class:`PostingsUnit`, the only thing :mod:`keeldb.text.bm25` needs:

- ``rows``: rows addressed (0..rows-1, dead ones included), ``lengths[row]`` the number of
  terms of the row's document (0 for a row without a document or without terms);
- ``lookup(terms)``: for each term, its posting list ``(rows u32 ascending, tf u32)``;
- a dead-row mask the unit keeps itself (:meth:`mark_dead`), so that its live statistics
  (``live_docs``, ``live_total_len``) are maintained in O(rows killed) and a term's live
  document frequency is counted at query time over its own posting list (which scoring
  reads anyway). So IDF, N and the average length always reflect exactly the live rows,
  whatever was deleted, with no per-row term lists to keep (``docs/text.md``).

A document is a row with at least one term (Lucene's ``docCount``): rows with length 0
never match and are not counted in N.

Within a unit a term's postings are sorted by row and hold each row at most once.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, islice
from typing import Protocol

import numpy as np

from keeldb.masks import read_only, with_dead
from keeldb.text.analyzer import TokenBatch

__all__ = [
    "MemPostings",
    "PostingsUnit",
    "SealedPostings",
    "TermPostings",
    "TermSpans",
    "coo_from_tokens",
    "match_mask",
]

TermPostings = tuple[np.ndarray, np.ndarray]  # (rows u32, tf u32) of one term in one unit
# Several terms' postings in one unit: (rows u32, tf u32, starts i64, ends i64); term i's
# postings are rows[starts[i]:ends[i]] and the same slice of tf (empty for an unknown term).
TermSpans = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_EMPTY_U32 = np.zeros(0, dtype=np.uint32)
_EMPTY: TermPostings = (_EMPTY_U32, _EMPTY_U32)


class PostingsUnit(Protocol):
    """What BM25 scoring needs from one unit (memtable or segment)."""

    @property
    def rows(self) -> int: ...

    @property
    def lengths(self) -> np.ndarray: ...

    @property
    def dead(self) -> np.ndarray: ...

    @property
    def dead_count(self) -> int: ...

    @property
    def live_docs(self) -> int: ...

    @property
    def live_total_len(self) -> int: ...

    def lookup(self, terms: Sequence[str]) -> list[TermPostings]: ...

    def spans(self, terms: Sequence[str]) -> TermSpans: ...

    def mark_dead(self, rows: np.ndarray) -> None: ...


# --- building blocks ---------------------------------------------------------------------


def spans_of(postings: Sequence[TermPostings]) -> TermSpans:
    """Per-term postings concatenated into one :data:`TermSpans`."""
    sizes = [len(p[0]) for p in postings]
    ends = np.cumsum(np.asarray(sizes, dtype=np.int64))
    rows = np.concatenate([p[0] for p in postings], dtype=np.uint32, casting="unsafe")
    tf = np.concatenate([p[1] for p in postings], dtype=np.uint32, casting="unsafe")
    return rows, tf, ends - np.asarray(sizes, dtype=np.int64), ends


def coo_from_tokens(
    token_lists: Sequence[Sequence[str]] | TokenBatch, vocab: dict[str, int], first_row: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Postings of rows ``first_row + i`` holding ``token_lists[i]`` (a list of terms per
    row, or a :class:`~keeldb.text.analyzer.TokenBatch`).

    New terms are added to ``vocab`` (term -> id, ids dense from ``len(vocab)``). Returns
    ``(term_ids i64, rows u32, tf u32, lengths u32)``; the triples are sorted by
    (term id, row) and unique.
    """
    if isinstance(token_lists, TokenBatch):
        flat: Sequence[str] = token_lists.terms
        counts = token_lists.counts
    else:
        counts = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(token_lists))
        flat = list(chain.from_iterable(token_lists))
    lengths = counts.astype(np.uint32)
    total = len(flat)
    if total == 0:
        e = np.zeros(0, dtype=np.int64)
        return e, _EMPTY_U32, _EMPTY_U32, lengths
    # Term ids through C-level iteration (dict.fromkeys, map): no Python code per token.
    # (Per distinct term of the batch, in first-seen order; never a pass over ``vocab``.)
    for t in [t for t in dict.fromkeys(flat) if t not in vocab]:
        vocab[t] = len(vocab)
    tids = np.fromiter(map(vocab.__getitem__, flat), dtype=np.int64, count=total)
    rows = np.repeat(np.arange(first_row, first_row + len(counts), dtype=np.int64), counts)
    keys, tf = np.unique((tids << 32) | rows, return_counts=True)
    return keys >> 32, (keys & 0xFFFFFFFF).astype(np.uint32), tf.astype(np.uint32), lengths


def _csr(term_ids: np.ndarray, n_terms: int) -> np.ndarray:
    """Offsets (i64, n_terms + 1) of term-sorted postings."""
    counts = np.bincount(term_ids, minlength=n_terms)
    offsets = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return offsets


class _DeadRows:
    """A unit's dead-row mask with the live statistics it implies. The mask is
    copy-on-write (a new read-only array per kill or growth): readers index with the mask
    they took, lock-free (see :func:`keeldb.masks.with_dead`)."""

    def __init__(self, lengths: np.ndarray, capacity: int) -> None:
        self.dead = read_only(np.zeros(capacity, dtype=bool))
        self.dead_count = 0
        self.live_docs = int(np.count_nonzero(lengths))
        self.live_total_len = int(lengths.sum(dtype=np.int64))

    def kill(self, rows: np.ndarray, lengths: np.ndarray, n: int) -> None:
        rows = np.unique(np.asarray(rows, dtype=np.int64))
        if len(rows) and (rows[0] < 0 or rows[-1] >= n):
            raise IndexError(f"row out of range 0..{n - 1}")
        fresh = rows[~self.dead[rows]]
        if not len(fresh):
            return
        self.dead = with_dead(self.dead, fresh)
        self.dead_count += len(fresh)
        lens = lengths[fresh]
        self.live_docs -= int(np.count_nonzero(lens))
        self.live_total_len -= int(lens.sum(dtype=np.int64))

    def grow(self, capacity: int) -> None:
        bigger = np.zeros(capacity, dtype=bool)
        bigger[: len(self.dead)] = self.dead
        self.dead = read_only(bigger)


# --- sealed ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostingsArrays:
    """The arrays of an immutable postings unit (what the postings file stores).

    ``terms`` sorted ascending (by code point); term ``t``'s postings are
    ``post_rows[term_offsets[t]:term_offsets[t+1]]`` (rows ascending) and the same slice of
    ``post_tf``; ``lengths[row]`` terms per row.
    """

    terms: list[str]
    term_offsets: np.ndarray  # i64 or u64, len(terms) + 1
    post_rows: np.ndarray  # u32
    post_tf: np.ndarray  # u32
    lengths: np.ndarray  # u32, one per row


class SealedPostings:
    """Immutable postings of a sealed segment (the dead mask is its only mutable part).

    Build with :meth:`build` (from token lists), :meth:`merge` (from several units with a
    row remapping) or :meth:`from_arrays` (from a loaded postings file, whose arrays may be
    views of a memory map). Thread-safe for readers; :meth:`mark_dead` under the
    collection's write lock.
    """

    def __init__(self, arrays: PostingsArrays) -> None:
        self.arrays = arrays
        self._lengths = arrays.lengths
        self._offsets = arrays.term_offsets
        self._vocab: dict[str, int] | None = None
        self._vocab_lock = threading.Lock()
        self._dead = _DeadRows(arrays.lengths, len(arrays.lengths))
        self.keepalive: object = None  # e.g. the memory map the arrays view
        self._terms_bytes: int | None = None

    @classmethod
    def from_arrays(cls, arrays: PostingsArrays) -> SealedPostings:
        """Wrap ``arrays`` (not copied)."""
        return cls(arrays)

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]] | TokenBatch) -> SealedPostings:
        """Postings of rows ``0..len(token_lists)-1`` holding the given terms."""
        vocab: dict[str, int] = {}
        tids, rows, tf, lengths = coo_from_tokens(token_lists, vocab)
        return cls(_sorted_arrays(list(vocab), tids, rows, tf, lengths))

    @classmethod
    def merge(
        cls,
        inputs: Sequence[tuple[PostingsUnit | SealedPostings | MemPostings, np.ndarray]],
        rows_out: int,
    ) -> SealedPostings:
        """One unit holding the rows of several: ``inputs`` are ``(unit, row_map)`` where
        ``row_map[r]`` is row ``r``'s number in the result, or -1 to drop it (deleted rows,
        or rows whose id was overwritten). Every kept row must map to a distinct row in
        ``0..rows_out-1``; rows of the result no input maps to have no document.

        The unit's own dead mask is not consulted: the caller says what to drop.
        """
        all_terms: list[str] = []
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        lengths = np.zeros(rows_out, dtype=np.uint32)
        base = 0
        for unit, row_map in inputs:
            terms, tids, rows, tf = _coo_of(unit)
            row_map = np.asarray(row_map, dtype=np.int64)
            if len(row_map) != unit.rows:
                raise ValueError(f"row_map has {len(row_map)} entries for {unit.rows} rows")
            kept = row_map >= 0
            if np.any(row_map >= rows_out):
                raise ValueError("row_map points past rows_out")
            lengths[row_map[kept]] = unit.lengths[: unit.rows][kept]
            new_rows = row_map[rows.astype(np.int64)]
            keep = new_rows >= 0
            parts.append((tids[keep] + base, new_rows[keep], tf[keep]))
            all_terms.extend(terms)
            base += len(terms)
        tids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        rows = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        tf = np.concatenate([p[2] for p in parts]) if parts else _EMPTY_U32
        # Collapse equal terms of different inputs to one id (np.unique sorts them).
        uniq, inverse = np.unique(np.asarray(all_terms, dtype=object), return_inverse=True)
        gid = inverse.reshape(-1)[tids] if len(tids) else tids
        used = np.zeros(len(uniq), dtype=bool)
        used[gid] = True
        keep_terms = np.flatnonzero(used)
        remap = np.full(len(uniq), -1, dtype=np.int64)
        remap[keep_terms] = np.arange(len(keep_terms))
        gid = remap[gid]
        order = np.lexsort((rows, gid))
        terms_out = [str(t) for t in uniq[keep_terms]]
        offsets = _csr(gid, len(terms_out))
        return cls(
            PostingsArrays(
                terms_out,
                offsets,
                rows[order].astype(np.uint32),
                tf[order].astype(np.uint32),
                lengths,
            )
        )

    # --- PostingsUnit ----------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Rows addressed (dead ones included)."""
        return len(self._lengths)

    @property
    def lengths(self) -> np.ndarray:
        """Terms per row (u32)."""
        return self._lengths

    @property
    def dead(self) -> np.ndarray:
        """The dead-row mask (bool, len ``rows``); read-only for callers."""
        return self._dead.dead

    @property
    def dead_count(self) -> int:
        """Rows marked dead."""
        return self._dead.dead_count

    @property
    def live_docs(self) -> int:
        """Live rows with at least one term."""
        return self._dead.live_docs

    @property
    def live_total_len(self) -> int:
        """Sum of the lengths of live rows."""
        return self._dead.live_total_len

    @property
    def terms(self) -> list[str]:
        """The vocabulary, sorted."""
        return self.arrays.terms

    def mark_dead(self, rows: np.ndarray) -> None:
        """Mark ``rows`` dead (idempotent; already-dead rows are ignored)."""
        self._dead.kill(rows, self._lengths, self.rows)

    @property
    def postings(self) -> int:
        """Postings held (one per distinct term of each row)."""
        return len(self.arrays.post_rows)

    def array_bytes(self) -> int:
        """Bytes of the postings arrays (offsets, rows, tf, lengths): memory-mapped from
        the segment's ``.post`` file when :attr:`keepalive` holds the map."""
        a = self.arrays
        return int(a.term_offsets.nbytes + a.post_rows.nbytes + a.post_tf.nbytes + a.lengths.nbytes)

    def memory_bytes(self) -> int:
        """Estimated bytes on the heap: the vocabulary (its strings, and the term -> id
        table once a query built it), the dead-row mask, and the arrays unless they are
        mapped from a file."""
        if self._terms_bytes is None:  # immutable: counted once
            terms = self.arrays.terms
            self._terms_bytes = sys.getsizeof(terms) + sum(map(sys.getsizeof, terms))
        vocab = self._vocab
        table = sys.getsizeof(vocab) if vocab is not None else 0
        arrays = 0 if self.keepalive is not None else self.array_bytes()
        return int(self._terms_bytes + table + self._dead.dead.nbytes + arrays)

    def _vocabulary(self) -> dict[str, int]:
        vocab = self._vocab
        if vocab is None:
            with self._vocab_lock:
                if self._vocab is None:
                    terms = self.arrays.terms
                    self._vocab = dict(zip(terms, range(len(terms)), strict=True))
                vocab = self._vocab
        return vocab

    def lookup(self, terms: Sequence[str]) -> list[TermPostings]:
        """The posting list of each term (empty arrays for an unknown term): slices of
        :meth:`spans`."""
        rows, tf, starts, ends = self.spans(terms)
        return [
            (rows[s:e], tf[s:e]) if e > s else _EMPTY
            for s, e in zip(starts.tolist(), ends.tolist(), strict=True)
        ]

    def spans(self, terms: Sequence[str]) -> TermSpans:
        """The postings of ``terms`` as spans of the unit's own arrays (nothing copied)."""
        vocab = self._vocabulary()
        off = self._offsets
        starts, ends = [], []
        for t in terms:
            tid = vocab.get(t)
            if tid is None:
                starts.append(0)
                ends.append(0)
            else:
                starts.append(int(off[tid]))
                ends.append(int(off[tid + 1]))
        a = self.arrays
        return a.post_rows, a.post_tf, np.array(starts, np.int64), np.array(ends, np.int64)


def _sorted_arrays(
    terms: list[str], tids: np.ndarray, rows: np.ndarray, tf: np.ndarray, lengths: np.ndarray
) -> PostingsArrays:
    """Arrays with the vocabulary sorted, from COO postings sorted by (tid, row)."""
    order_terms = sorted(range(len(terms)), key=terms.__getitem__)
    rank = np.empty(len(terms), dtype=np.int64)
    rank[np.asarray(order_terms, dtype=np.int64)] = np.arange(len(terms))
    new_tids = rank[tids] if len(tids) else tids
    order = np.argsort(new_tids, kind="stable")  # rows stay ascending within a term
    return PostingsArrays(
        [terms[i] for i in order_terms],
        _csr(new_tids, len(terms)),
        rows[order].astype(np.uint32),
        tf[order].astype(np.uint32),
        lengths.astype(np.uint32),
    )


def _coo_of(
    unit: PostingsUnit | SealedPostings | MemPostings,
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(terms, term ids i64, rows, tf)`` of every posting of ``unit``."""
    if isinstance(unit, SealedPostings):
        a = unit.arrays
        off = np.asarray(a.term_offsets, dtype=np.int64)
        tids = np.repeat(np.arange(len(a.terms), dtype=np.int64), np.diff(off))
        return a.terms, tids, np.asarray(a.post_rows), np.asarray(a.post_tf)
    if isinstance(unit, MemPostings):
        return unit.coo()
    raise TypeError(f"cannot merge postings of {type(unit).__name__}")


# --- growing (memtable) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MemState:
    """A consistent snapshot for readers: base CSR + unsorted tail of COO postings."""

    n_rows: int
    lengths: np.ndarray  # capacity buffer; valid prefix n_rows
    base_off: np.ndarray  # i64, base_terms + 1
    base_rows: np.ndarray
    base_tf: np.ndarray
    tail_tid: np.ndarray  # capacity buffers; valid prefix tail_n
    tail_row: np.ndarray
    tail_tf: np.ndarray
    tail_n: int


# A tail is folded into the base once it holds more than this many postings and more than
# an eighth of the base: each posting is re-sorted O(log_{1.125} n) times in all (amortised
# O(log n) per append) and a query scans at most max(TAIL_MIN, base/8) tail postings.
# On 16k pypi summaries appended 100 at a time, 8,192 / 8 gave ~1.2x the query rate of
# 32,768 / 4 at the same append rate (paired runs, 2026-12-01).
TAIL_MIN_POSTINGS = 8_192
_TAIL_DIV = 8


class MemPostings:
    """Growing postings of the memtable: :meth:`append` adds rows, searchable at once.

    Postings live in a base (CSR, sorted by term) plus a tail (COO, appended batches) that
    is folded into the base geometrically, so appends cost amortised O(postings) and a
    lookup is one CSR slice plus a vectorised scan of the tail. Readers take an immutable
    snapshot and never wait; :meth:`append` and :meth:`mark_dead` must be serialised by the
    caller (the collection's write lock). Row numbers are assigned in append order, from 0.
    """

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._terms_bytes = 0  # of the strings in _terms
        e64 = np.zeros(1, dtype=np.int64)
        self._state = _MemState(
            0, np.zeros(1024, np.uint32), e64, _EMPTY_U32, _EMPTY_U32,
            np.zeros(1024, np.int64), np.zeros(1024, np.uint32), np.zeros(1024, np.uint32), 0,
        )  # fmt: skip
        self._dead = _DeadRows(np.zeros(0, np.uint32), 1024)

    # --- writes ----------------------------------------------------------------------------

    def append(self, token_lists: Sequence[Sequence[str]] | TokenBatch) -> np.ndarray:
        """Add one row per token list; returns their row numbers (i64). A row with no
        terms (no document, or only stop words) gets length 0 and no postings."""
        s = self._state
        first = s.n_rows
        tids, rows, tf, lens = coo_from_tokens(token_lists, self._vocab, first)
        n_new = len(self._vocab) - len(self._terms)
        if n_new:  # the newest keys, without walking the whole vocabulary
            new_terms = list(islice(reversed(self._vocab), n_new))[::-1]
            self._terms.extend(new_terms)
            self._terms_bytes += sum(map(sys.getsizeof, new_terms))
        n_rows = first + len(lens)
        lengths = _ensure(s.lengths, n_rows)
        lengths[first:n_rows] = lens
        if len(self._dead.dead) < n_rows:
            self._dead.grow(len(lengths))
        self._dead.live_docs += int(np.count_nonzero(lens))
        self._dead.live_total_len += int(lens.sum(dtype=np.int64))
        tail_n = s.tail_n + len(tids)
        t_tid, t_row, t_tf = (_ensure(a, tail_n) for a in (s.tail_tid, s.tail_row, s.tail_tf))
        t_tid[s.tail_n : tail_n] = tids
        t_row[s.tail_n : tail_n] = rows
        t_tf[s.tail_n : tail_n] = tf
        state = _MemState(n_rows, lengths, s.base_off, s.base_rows, s.base_tf,
                          t_tid, t_row, t_tf, tail_n)  # fmt: skip
        if tail_n > max(TAIL_MIN_POSTINGS, len(s.base_rows) // _TAIL_DIV):
            state = self._fold(state)
        self._state = state  # publish: readers see all of the batch or none of it
        return np.arange(first, n_rows, dtype=np.int64)

    def _fold(self, s: _MemState) -> _MemState:
        base_tids = np.repeat(np.arange(len(s.base_off) - 1, dtype=np.int64), np.diff(s.base_off))
        tids = np.concatenate([base_tids, s.tail_tid[: s.tail_n]])
        order = np.argsort(tids, kind="stable")  # base rows < tail rows; batches in row order
        tids = tids[order]
        rows = np.concatenate([s.base_rows, s.tail_row[: s.tail_n]])[order]
        tf = np.concatenate([s.base_tf, s.tail_tf[: s.tail_n]])[order]
        off = _csr(tids, len(self._terms))
        return _MemState(s.n_rows, s.lengths, off, rows, tf,
                         np.zeros(1024, np.int64), np.zeros(1024, np.uint32),
                         np.zeros(1024, np.uint32), 0)  # fmt: skip

    def mark_dead(self, rows: np.ndarray) -> None:
        """Mark ``rows`` dead (idempotent)."""
        s = self._state
        self._dead.kill(rows, s.lengths, s.n_rows)

    @property
    def postings(self) -> int:
        """Postings held (one per distinct term of each row)."""
        s = self._state
        return len(s.base_rows) + s.tail_n

    @property
    def terms(self) -> int:
        """Distinct terms seen."""
        return len(self._terms)

    def memory_bytes(self) -> int:
        """Estimated bytes on the heap: the postings buffers (capacity), lengths and dead
        mask, and the vocabulary (strings, list and term -> id table)."""
        s = self._state
        buffers = (s.lengths, s.base_off, s.base_rows, s.base_tf, s.tail_tid, s.tail_row,
                   s.tail_tf, self._dead.dead)  # fmt: skip
        vocab = self._terms_bytes + sys.getsizeof(self._terms) + sys.getsizeof(self._vocab)
        return int(sum(b.nbytes for b in buffers) + vocab)

    # --- PostingsUnit ----------------------------------------------------------------------

    @property
    def rows(self) -> int:
        """Rows appended so far (dead ones included)."""
        return self._state.n_rows

    @property
    def lengths(self) -> np.ndarray:
        """Terms per row (u32, len ``rows``)."""
        s = self._state
        return s.lengths[: s.n_rows]

    @property
    def dead(self) -> np.ndarray:
        """The dead-row mask (bool, len ``rows``)."""
        return self._dead.dead[: self._state.n_rows]

    @property
    def dead_count(self) -> int:
        """Rows marked dead."""
        return self._dead.dead_count

    @property
    def live_docs(self) -> int:
        """Live rows with at least one term."""
        return self._dead.live_docs

    @property
    def live_total_len(self) -> int:
        """Sum of the lengths of live rows."""
        return self._dead.live_total_len

    def lookup(self, terms: Sequence[str]) -> list[TermPostings]:
        """The posting list of each term over the rows appended so far."""
        s = self._state
        vocab = self._vocab
        tids = [vocab.get(t, -1) for t in terms]
        n_base = len(s.base_off) - 1
        hits = None
        if s.tail_n:
            wanted = np.asarray([t for t in tids if t >= 0], dtype=np.int64)
            tail = s.tail_tid[: s.tail_n]
            # kind="sort": numpy's default picks a lookup table spanning the term-id range
            # here (the whole vocabulary), 8x slower on a 19k-posting tail of pypi
            idx = np.flatnonzero(np.isin(tail, wanted, kind="sort")) if len(wanted) else None
            hits = (idx, tail[idx]) if idx is not None and len(idx) else None
        out: list[TermPostings] = []
        for tid in tids:
            if tid < 0:
                out.append(_EMPTY)
                continue
            if tid < n_base:
                a, b = int(s.base_off[tid]), int(s.base_off[tid + 1])
                rows, tf = s.base_rows[a:b], s.base_tf[a:b]
            else:
                rows, tf = _EMPTY
            if hits is not None:
                sel = hits[0][hits[1] == tid]
                if len(sel):
                    rows = np.concatenate([rows, s.tail_row[sel]])
                    tf = np.concatenate([tf, s.tail_tf[sel]])
            out.append((rows, tf))
        return out

    def spans(self, terms: Sequence[str]) -> TermSpans:
        """The postings of ``terms`` (:meth:`lookup`) concatenated, as spans."""
        return spans_of(self.lookup(terms))

    def coo(self) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """``(terms, term ids, rows, tf)`` of every posting (for sealing via
        :meth:`SealedPostings.merge`)."""
        s = self._state
        base_tids = np.repeat(np.arange(len(s.base_off) - 1, dtype=np.int64), np.diff(s.base_off))
        return (
            list(self._terms),
            np.concatenate([base_tids, s.tail_tid[: s.tail_n]]),
            np.concatenate([s.base_rows, s.tail_row[: s.tail_n]]),
            np.concatenate([s.base_tf, s.tail_tf[: s.tail_n]]),
        )

    def seal(self, row_map: np.ndarray | None = None) -> SealedPostings:
        """Immutable postings of these rows; ``row_map`` as in :meth:`SealedPostings.merge`
        (default: dead rows dropped, live rows renumbered densely in order)."""
        if row_map is None:
            live = ~self.dead
            row_map = np.where(live, np.cumsum(live) - 1, -1)
        rows_out = int(row_map.max()) + 1 if len(row_map) else 0
        return SealedPostings.merge([(self, row_map)], rows_out)


def _ensure(buf: np.ndarray, n: int) -> np.ndarray:
    """``buf``, or a copy with capacity >= n (doubling) sharing its prefix."""
    if len(buf) >= n:
        return buf
    bigger = np.zeros(max(n, 2 * len(buf)), dtype=buf.dtype)
    bigger[: len(buf)] = buf
    return bigger


def match_mask(unit: PostingsUnit, terms: Sequence[str], *, require_all: bool = True) -> np.ndarray:
    """Rows of ``unit`` whose document contains every one of ``terms`` (``require_all``)
    or any of them, as a bool mask of len ``unit.rows`` (dead rows not excluded: AND it
    with the live mask). The terms are already analysed; no terms matches nothing. This
    is the ``$text`` document filter's building block."""
    unique = list(dict.fromkeys(terms))
    mask = np.zeros(unit.rows, dtype=bool)
    if not unique:
        return mask
    postings = unit.lookup(unique)
    if require_all and any(len(p[0]) == 0 for p in postings):
        return mask
    rows = np.concatenate([p[0] for p in postings]).astype(np.intp)
    if not require_all:
        mask[rows] = True
        return mask
    counts = np.bincount(rows, minlength=unit.rows)
    out: np.ndarray = counts == len(unique)
    return out
