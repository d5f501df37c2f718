"""Postings on disk: save a segment's postings, load them, rebuild them from documents.

The glue between :mod:`keeldb.text.postings` (in-memory units) and
:mod:`keeldb.storage.text_files` (the ``.docs`` / ``.post`` formats). The engine calls
:func:`load_or_rebuild` at open: a missing or damaged ``.post`` (or one built by another
analyser) is rebuilt from the segment's ``.docs`` and rewritten, with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.text_files import DocumentsTable, map_postings, write_postings
from keeldb.text.analyzer import Analyzer
from keeldb.text.postings import PostingsArrays, SealedPostings

__all__ = ["build_postings", "load_or_rebuild", "load_postings", "save_postings"]


def build_postings(documents: Sequence[str | None], analyzer: Analyzer) -> SealedPostings:
    """Postings of ``documents`` (row i = documents[i]; None = no document)."""
    return SealedPostings.build(analyzer.tokenize_batch([d or "" for d in documents]))


def save_postings(
    fs: FileSystem,
    directory: str,
    segment_id: int,
    postings: SealedPostings,
    analyzer: Analyzer,
    *,
    replace: bool = False,
) -> int:
    """Write ``seg-<id>.post`` and fsync it: a new file, or with ``replace`` an atomic
    replacement of an existing one. Returns bytes written."""
    a = postings.arrays
    return write_postings(
        fs, directory, segment_id, terms=a.terms, term_offsets=a.term_offsets,
        post_rows=a.post_rows, post_tf=a.post_tf, lengths=a.lengths,
        analyzer_fingerprint=analyzer.fingerprint(), atomic=replace,
    )  # fmt: skip


def load_postings(directory: str, segment_id: int, rows: int, analyzer: Analyzer) -> SealedPostings:
    """Map ``seg-<id>.post`` (arrays stay views of the map). Raises CorruptionError
    (``PostingsMissingError`` when absent) as :func:`map_postings` does."""
    f = map_postings(directory, segment_id, rows, analyzer_fingerprint=analyzer.fingerprint())
    arrays = PostingsArrays(f.terms, f.term_offsets, f.post_rows, f.post_tf, f.lengths)
    postings = SealedPostings.from_arrays(arrays)
    postings.keepalive = f.mm  # the map lives as long as the postings
    return postings


def load_or_rebuild(
    fs: FileSystem, directory: str, segment_id: int, rows: int, analyzer: Analyzer
) -> tuple[SealedPostings, bool]:
    """The segment's postings, rebuilt from ``.docs`` (and the file replaced) when the
    ``.post`` file is missing, damaged or from another analyser. Returns ``(postings,
    rebuilt)``; warns (``RuntimeWarning``) on a rebuild. A damaged ``.docs`` raises
    CorruptionError: the documents are the truth and cannot be rebuilt."""
    try:
        return load_postings(directory, segment_id, rows, analyzer), False
    except CorruptionError as exc:
        reason = str(exc)
    docs = DocumentsTable(directory, segment_id, rows)
    try:
        postings = build_postings(docs.all(), analyzer)
    finally:
        docs.close()
    save_postings(fs, directory, segment_id, postings, analyzer, replace=True)
    warnings.warn(
        f"rebuilt text postings of segment {segment_id} from its documents ({reason})",
        RuntimeWarning,
        stacklevel=2,
    )
    return postings, True
