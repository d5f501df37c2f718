"""Splitting long texts into overlapping chunks for embedding and retrieval.

:func:`chunk` splits on paragraph breaks first, then sentence ends, then whitespace, and
only as a last resort inside a word, so that each chunk is at most ``max_chars``
characters and as many natural boundaries as possible are kept. :func:`chunk_records`
turns one long text into records under a parent id (ids, documents and metadata ready
for ``upsert``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from keeldb.errors import InvalidArgumentError

__all__ = ["Chunk", "ChunkRecords", "chunk", "chunk_records", "chunk_spans"]

# Separators from coarsest to finest; each match is kept at the end of the piece before it.
_LEVELS = (
    re.compile(r"\n[ \t]*\n\s*"),  # paragraph break (blank line)
    re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+"),  # sentence end followed by space
    re.compile(r"\s+"),  # any whitespace
)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a text: ``text == source[start:end]``."""

    text: str
    start: int
    end: int


def _pieces(text: str, start: int, end: int, level: int) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` at separators of ``level`` (separator kept with the left
    piece), or into single characters' worth when there are no levels left."""
    if level >= len(_LEVELS):
        return [(start, end)]
    cuts = [m.end() for m in _LEVELS[level].finditer(text, start, end) if start < m.end() < end]
    bounds = [start, *cuts, end]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def _atoms(text: str, start: int, end: int, max_chars: int, level: int) -> list[tuple[int, int]]:
    """Pieces of at most ``max_chars``, split at the coarsest level that gets them there."""
    out: list[tuple[int, int]] = []
    for a, b in _pieces(text, start, end, level):
        if b - a <= max_chars:
            out.append((a, b))
        elif level + 1 < len(_LEVELS):
            out.extend(_atoms(text, a, b, max_chars, level + 1))
        else:  # a single "word" longer than max_chars: hard cut
            out.extend((i, min(i + max_chars, b)) for i in range(a, b, max_chars))
    return out


def chunk_spans(text: str, max_chars: int = 1000, overlap: int = 0) -> list[Chunk]:
    """Chunks of ``text`` with their character offsets (see :func:`chunk`)."""
    if not isinstance(text, str):
        raise InvalidArgumentError("text must be a string")
    if not isinstance(max_chars, int) or max_chars < 1:
        raise InvalidArgumentError("max_chars must be a positive integer")
    if not isinstance(overlap, int) or not 0 <= overlap < max_chars:
        raise InvalidArgumentError("overlap must be an integer in 0..max_chars-1")
    atoms = _atoms(text, 0, len(text), max_chars, 0)
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(atoms):
        start = atoms[i][0]
        j = i
        while j + 1 < len(atoms) and atoms[j + 1][1] - start <= max_chars:
            j += 1
        end = atoms[j][1]
        spans.append((start, end))
        if j + 1 >= len(atoms):
            break
        # Next chunk starts at the earliest atom boundary within `overlap` of the end,
        # but always after this chunk's first atom (progress).
        nxt = j + 1
        while overlap and nxt - 1 > i and end - atoms[nxt - 1][0] <= overlap:
            nxt -= 1
        while nxt <= j and not text[atoms[nxt][0] : atoms[nxt][1]].strip():
            nxt += 1  # an overlap never starts with blank pieces
        i = nxt
    out: list[Chunk] = []
    for a, b in spans:
        piece = text[a:b]
        stripped = piece.strip()
        if not stripped:
            continue
        lead = len(piece) - len(piece.lstrip())
        a2 = a + lead
        if out and out[-1].start <= a2 and a2 + len(stripped) <= out[-1].end:
            continue  # only blank pieces told it apart from the previous chunk
        out.append(Chunk(stripped, a2, a2 + len(stripped)))
    return out


def chunk(text: str, max_chars: int = 1000, overlap: int = 0) -> list[str]:
    """Split ``text`` into chunks of at most ``max_chars`` characters.

    Boundaries are chosen from paragraph breaks (a blank line), then sentence ends, then
    whitespace; a word longer than ``max_chars`` is cut. Consecutive chunks share up to
    ``overlap`` characters, made of whole pieces of the finest level used (so the overlap
    never starts mid-word unless a word was cut). Leading/trailing whitespace of each
    chunk is stripped; blank chunks are dropped. Raises InvalidArgumentError for
    ``max_chars < 1`` or an ``overlap`` outside ``0..max_chars-1``.

    >>> chunk("One. Two.\\n\\nThree four five.", max_chars=12)
    ['One. Two.', 'Three four', 'five.']
    """
    return [c.text for c in chunk_spans(text, max_chars, overlap)]


@dataclass(frozen=True, slots=True)
class ChunkRecords:
    """Records ready for ``upsert(ids, documents=..., metadata=...)``."""

    ids: list[str]
    documents: list[str]
    metadata: list[dict[str, Any]]


def chunk_records(
    parent_id: str,
    text: str,
    max_chars: int = 1000,
    overlap: int = 0,
    *,
    metadata: dict[str, Any] | None = None,
) -> ChunkRecords:
    """The chunks of ``text`` as records under one parent.

    Ids are ``f"{parent_id}#{i}"`` with ``i`` = 0, 1, ... in text order (so re-chunking
    the same text yields the same ids; delete the old chunks by filtering on
    ``parent_id`` when a new version has fewer). Each record's metadata is ``metadata``
    (copied; must not use the keys below) plus ``{"parent_id": parent_id, "chunk": i,
    "start": s, "end": e}``, where ``text[s:e]`` is the chunk's document.
    """
    if not isinstance(parent_id, str) or not parent_id:
        raise InvalidArgumentError("parent_id must be a non-empty string")
    base = dict(metadata or {})
    clash = {"parent_id", "chunk", "start", "end"} & set(base)
    if clash:
        raise InvalidArgumentError(f"metadata may not use the chunk keys {sorted(clash)}")
    chunks = chunk_spans(text, max_chars, overlap)
    return ChunkRecords(
        [f"{parent_id}#{i}" for i in range(len(chunks))],
        [c.text for c in chunks],
        [
            {**base, "parent_id": parent_id, "chunk": i, "start": c.start, "end": c.end}
            for i, c in enumerate(chunks)
        ],
    )
