"""Writing and reading a sealed segment's text files: ``.docs`` and ``.post``.

``.docs`` (magic ``KEELDOCS``) holds each row's document, the truth for full-text search.
``.post`` (magic ``KEELPOST``) holds the segment's BM25 postings, derived from ``.docs``:
a missing or damaged one raises :class:`~keeldb.errors.CorruptionError` (or
:class:`PostingsMissingError`) so the caller rebuilds it from the documents. Layouts
byte by byte in ``docs/format.md``. Like every segment file they are written under their
final names (the manifest swap is the commit point) and fsynced.
"""

from __future__ import annotations

import mmap
import os
import struct
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import (
    HEADER_SIZE,
    MAGIC_DOCUMENTS,
    MAGIC_POSTINGS,
    segment_file_name,
)
from keeldb.storage.framed import map_framed, write_framed

__all__ = [
    "DocumentsTable",
    "PostingsFile",
    "PostingsMissingError",
    "blob_contains",
    "map_postings",
    "write_documents",
    "write_postings",
]

# .post sub-header at the start of the payload: u64 terms, u64 postings, u64 terms blob
# length, u64 total length (sum of row lengths), u32 analyser fingerprint, u32 0.
_POST_HEAD = struct.Struct("<QQQQII")


def _u64_offsets(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype="<u8")
    np.cumsum(lengths, out=offsets[1:])
    return offsets


# --- documents -----------------------------------------------------------------------------


def blob_contains(blob: Any, start: int, offsets: list[int], needle: bytes) -> np.ndarray:
    """``bool[len(offsets) - 1]``: documents ``i`` (bytes ``blob[start + offsets[i] :
    start + offsets[i + 1]]``) containing ``needle``. ``blob`` is bytes or an mmap."""
    rows = len(offsets) - 1
    out = bytearray(rows)
    end = start + offsets[-1]
    width = len(needle)
    find = blob.find
    pos = start
    while True:
        hit = find(needle, pos, end)
        if hit < 0:
            break
        row = bisect_right(offsets, hit - start) - 1
        doc_end = start + offsets[row + 1]
        if hit + width <= doc_end:
            out[row] = 1
            pos = doc_end  # the rest of this document cannot add anything
        else:
            pos = hit + 1  # spans into the next document: not a match
    return np.frombuffer(bytes(out), dtype=bool).copy()


def write_documents(
    fs: FileSystem, directory: str, segment_id: int, documents: Sequence[str | None]
) -> int:
    """Write ``seg-<id>.docs``: row i's document is ``documents[i]`` (None = the row has no
    document, distinct from ""). Returns bytes written."""
    path = os.path.join(directory, segment_file_name(segment_id, "docs"))
    present = np.fromiter((d is not None for d in documents), dtype=bool, count=len(documents))
    encoded = [d.encode() if d is not None else b"" for d in documents]
    lengths = np.fromiter(map(len, encoded), dtype=np.uint64, count=len(encoded))
    offsets = _u64_offsets(lengths)
    bits = np.packbits(present, bitorder="little")
    pad = b"\0" * ((-len(bits)) % 8)
    chunks: list[bytes | memoryview] = [
        offsets.data.cast("B"),
        bits.tobytes() + pad,
        b"".join(encoded),
    ]
    return write_framed(
        fs, path, MAGIC_DOCUMENTS, chunks, rows=len(documents),
        aux=int(np.count_nonzero(present)), atomic=False,
    )  # fmt: skip


class DocumentsTable:
    """A segment's documents, memory-mapped and fully verified at open; rows decoded only
    when asked for. Raises CorruptionError on any damage."""

    def __init__(self, directory: str, segment_id: int, rows: int) -> None:
        self.path = os.path.join(directory, segment_file_name(segment_id, "docs"))
        header, mm = map_framed(self.path, MAGIC_DOCUMENTS, verify=True)
        self._mm: mmap.mmap = mm
        bitmap_len = (rows + 7) // 8
        bitmap_len += (-bitmap_len) % 8
        fixed = 8 * (rows + 1) + bitmap_len
        try:
            if header.rows != rows or header.payload_len < fixed:
                raise CorruptionError(
                    "documents file size disagrees with the manifest", path=self.path, offset=16
                )
            self.offsets = np.frombuffer(mm, dtype="<u8", count=rows + 1, offset=HEADER_SIZE)
            bits = np.frombuffer(
                mm, dtype=np.uint8, count=bitmap_len, offset=HEADER_SIZE + 8 * (rows + 1)
            )
            self.present = np.unpackbits(bits, count=rows, bitorder="little").astype(bool)
            self._blob = HEADER_SIZE + fixed
            blob_len = header.payload_len - fixed
            offs = self.offsets.astype(np.int64)
            if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
                raise CorruptionError(
                    "document offsets are inconsistent", path=self.path, offset=HEADER_SIZE
                )
            if int(np.count_nonzero(self.present)) != header.aux:
                raise CorruptionError(
                    "document count disagrees with its header", path=self.path, offset=24
                )
            if np.any(np.diff(offs)[~self.present] != 0):
                raise CorruptionError(
                    "a row without a document has bytes", path=self.path, offset=HEADER_SIZE
                )
        except BaseException:
            self.close()
            raise
        self.rows = rows

    def many(self, rows: Sequence[int] | np.ndarray) -> list[str | None]:
        """The documents of ``rows`` (None where a row has none)."""
        idx = np.asarray(rows, dtype=np.int64)
        starts = (self.offsets[idx].astype(np.int64) + self._blob).tolist()
        ends = (self.offsets[idx + 1].astype(np.int64) + self._blob).tolist()
        present = self.present[idx].tolist()
        mm = self._mm
        try:
            return [
                mm[a:b].decode() if p else None
                for a, b, p in zip(starts, ends, present, strict=True)
            ]
        except UnicodeDecodeError as exc:
            raise CorruptionError(f"a document is not UTF-8: {exc}", path=self.path) from exc

    def find_rows(self, needle: bytes) -> np.ndarray:
        """``bool[rows]``: rows whose document's UTF-8 bytes contain ``needle`` (a
        non-empty UTF-8 string's encoding: then a code-point substring match). Searched
        in the mapped file, in C, once per matching row (``$contains``)."""
        offsets = self.offsets.astype(np.int64).tolist()
        return blob_contains(self._mm, self._blob, offsets, needle)

    def at(self, row: int) -> str | None:
        """The document of ``row``."""
        return self.many([row])[0]

    def all(self) -> list[str | None]:
        """Every row's document, in row order (for rebuilding postings and merging)."""
        return self.many(np.arange(self.rows))

    def close(self) -> None:
        """Unmap the file; the table is unusable afterwards."""
        for name in ("offsets", "present"):
            if hasattr(self, name):
                delattr(self, name)
        self._mm.close()


# --- postings ------------------------------------------------------------------------------


class PostingsMissingError(CorruptionError):
    """A segment that should have a ``.post`` file has none (rebuild it from ``.docs``)."""


@dataclass(slots=True)
class PostingsFile:
    """A loaded ``.post`` file: its arrays are views of ``mm`` (close it only after the
    arrays are no longer used)."""

    terms: list[str]
    term_offsets: np.ndarray  # u64, len(terms) + 1
    post_rows: np.ndarray  # u32
    post_tf: np.ndarray  # u32
    lengths: np.ndarray  # u32, one per row
    analyzer_fingerprint: int
    mm: mmap.mmap | None
    path: str


def write_postings(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    *,
    terms: Sequence[str],
    term_offsets: np.ndarray,
    post_rows: np.ndarray,
    post_tf: np.ndarray,
    lengths: np.ndarray,
    analyzer_fingerprint: int,
    atomic: bool = False,
) -> int:
    """Write ``seg-<id>.post`` from postings arrays (``keeldb.text.PostingsArrays``
    fields; ``terms`` sorted, none containing NUL). ``atomic`` replaces an existing file
    (a rebuild); without it the file must be new (seal, merge). Returns bytes written."""
    path = os.path.join(directory, segment_file_name(segment_id, "post"))
    blob = "\0".join(terms).encode()
    rows = np.ascontiguousarray(post_rows, dtype="<u4")
    tf = np.ascontiguousarray(post_tf, dtype="<u4")
    lens = np.ascontiguousarray(lengths, dtype="<u4")
    offs = np.ascontiguousarray(term_offsets, dtype="<u8")
    assert len(offs) == len(terms) + 1 and len(rows) == len(tf) == int(offs[-1])
    head = _POST_HEAD.pack(
        len(terms), len(rows), len(blob), int(lens.sum(dtype=np.uint64)), analyzer_fingerprint, 0
    )
    pad = b"\0" * ((-len(lens)) % 2 * 4)  # the blob starts 8-byte aligned
    arrays = [offs, rows, tf, lens]
    chunks: list[bytes | memoryview] = [head, *(a.data.cast("B") for a in arrays), pad, blob]
    return write_framed(
        fs, path, MAGIC_POSTINGS, chunks, rows=len(lens), aux=len(terms), atomic=atomic
    )


def map_postings(
    directory: str, segment_id: int, rows: int, *, analyzer_fingerprint: int | None = None
) -> PostingsFile:
    """Map and verify ``seg-<id>.post`` (full CRC, shape, offsets and row numbers).

    Raises PostingsMissingError when the file does not exist, CorruptionError when it is
    damaged, disagrees with ``rows``, or was built by another analyser (its fingerprint
    differs from ``analyzer_fingerprint``): in each case rebuild it from ``.docs``.
    """
    path = os.path.join(directory, segment_file_name(segment_id, "post"))
    if not os.path.exists(path):
        raise PostingsMissingError("postings file is missing", path=path)
    header, mm = map_framed(path, MAGIC_POSTINGS, verify=True)
    try:
        return _parse_postings(mm, header.payload_len, header.rows, header.aux, rows, path,
                               analyzer_fingerprint)  # fmt: skip
    except BaseException:
        mm.close()
        raise


def _parse_postings(
    mm: mmap.mmap,
    payload_len: int,
    header_rows: int,
    header_terms: int,
    rows: int,
    path: str,
    fingerprint: int | None,
) -> PostingsFile:
    def bad(msg: str, offset: int = HEADER_SIZE) -> CorruptionError:
        return CorruptionError(msg, path=path, offset=offset)

    if header_rows != rows:
        raise bad("postings row count disagrees with the manifest", 16)
    if payload_len < _POST_HEAD.size:
        raise bad("postings payload too short")
    n_terms, n_post, blob_len, total_len, fp, zero = _POST_HEAD.unpack_from(mm, HEADER_SIZE)
    if fingerprint is not None and fp != fingerprint:
        raise bad("postings were built by another analyser", HEADER_SIZE + 32)
    pad = (-rows) % 2 * 4
    need = _POST_HEAD.size + 8 * (n_terms + 1) + 8 * n_post + 4 * rows + pad + blob_len
    if n_terms != header_terms or need != payload_len or zero:
        raise bad("postings sizes are inconsistent")
    pos = HEADER_SIZE + _POST_HEAD.size
    offs = np.frombuffer(mm, dtype="<u8", count=n_terms + 1, offset=pos)
    pos += 8 * (n_terms + 1)
    post_rows = np.frombuffer(mm, dtype="<u4", count=n_post, offset=pos)
    pos += 4 * n_post
    post_tf = np.frombuffer(mm, dtype="<u4", count=n_post, offset=pos)
    pos += 4 * n_post
    lengths = np.frombuffer(mm, dtype="<u4", count=rows, offset=pos)
    pos += 4 * rows + pad
    if int(offs[0]) != 0 or int(offs[-1]) != n_post or np.any(np.diff(offs.astype(np.int64)) < 0):
        raise bad("postings offsets are inconsistent")
    if n_post and (int(post_rows.max()) >= rows or int(post_tf.min()) == 0):
        raise bad("a posting names a row out of range or a zero frequency")
    if int(lengths.sum(dtype=np.uint64)) != total_len:
        raise bad("postings lengths disagree with their total")
    try:
        text = mm[pos : pos + blob_len].decode()
    except UnicodeDecodeError as exc:
        raise bad(f"postings vocabulary is not UTF-8: {exc}", pos) from exc
    terms = text.split("\0") if n_terms else []
    if len(terms) != n_terms:
        raise bad("postings vocabulary has the wrong number of terms", pos)
    return PostingsFile(terms, offs, post_rows, post_tf, lengths, fp, mm, path)
