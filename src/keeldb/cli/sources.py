"""Readers and writers of the files ``keeldb import`` / ``keeldb export`` understand.

Formats (chosen by file extension):

``.jsonl`` / ``.jsonl.gz``
    one JSON object per line: ``{"id": str, "vector": [float, ...], "metadata": {...},
    "document": str}`` (``metadata`` and ``document`` optional; a null or absent document
    keeps an existing record's). What ``export`` writes, and the lossless choice.
``.npz``
    arrays ``vectors`` (n × dim), optional ``ids`` (n strings or integers), optional
    ``metadata`` (n JSON-object strings) and optional ``documents`` (n JSON values, each a
    string or ``null``). ``export`` writes the first three, and ``documents`` when a
    record has one.
``.npy``
    a bare n × dim array (any float dtype, float16 included). Ids are the row numbers
    (plus ``--id-prefix``) unless ``--ids FILE`` gives one per line; metadata may come
    from ``--metadata FILE.jsonl[.gz]``, one object per line in row order.

Every reader can start at a row offset (for resuming) and yields batches of
``(rows consumed, ids, vectors float32 (b × dim), metadata list | None, documents list |
None)``. Malformed input raises
:class:`CliError` naming the file and line or row.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from keeldb.cli.common import CliError

__all__ = ["Batch", "Source", "open_source", "write_jsonl_records", "write_npz_records"]

# (input rows consumed, ids, vectors, metadata, documents). Rows consumed can exceed
# len(ids) when a .jsonl file has blank lines; resuming counts input rows, not records.
Batch = tuple[
    int, list[str], np.ndarray, list[dict[str, Any] | None] | None, list[str | None] | None
]


def _open_text(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _format(path: Path) -> str:
    name = path.name.lower()
    for ext in (".jsonl.gz", ".jsonl", ".npz", ".npy"):
        if name.endswith(ext):
            return ext.removesuffix(".gz")
    raise CliError(f"{path}: unknown format; expected .jsonl, .jsonl.gz, .npz or .npy", 2)


def _document(value: Any, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise CliError(f"{where}: 'document' must be a string or null")
    return value


def _document_json(text: str, where: str) -> str | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where}: document is not valid JSON: {exc}") from exc
    return _document(value, where)


def _metadata_object(text: str, where: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{where}: metadata is not valid JSON: {exc}") from exc
    if value is not None and not isinstance(value, dict):
        raise CliError(f"{where}: metadata must be a JSON object or null")
    return value


class Source:
    """A file of records. ``total``: rows (None if unknown without reading it all);
    ``dim``: vector length (None until known)."""

    total: int | None = None
    dim: int | None = None

    def batches(self, start: int, size: int) -> Iterator[Batch]:
        """Yield batches of at most ``size`` rows, skipping the first ``start`` rows."""
        raise NotImplementedError


class ArraySource(Source):
    """``.npy`` / ``.npz``: vectors from an array (memory-mapped for .npy)."""

    def __init__(
        self,
        path: Path,
        *,
        ids_file: Path | None = None,
        metadata_file: Path | None = None,
        id_prefix: str = "",
    ) -> None:
        self.path = path
        self.ids: np.ndarray | None = None
        self.metadata: np.ndarray | None = None
        self.documents: np.ndarray | None = None
        self.metadata_file = metadata_file
        self.id_prefix = id_prefix
        try:
            if _format(path) == ".npy":
                self.vectors = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                archive = np.load(path, allow_pickle=False)
                if "vectors" not in archive.files:
                    raise CliError(f"{path}: no 'vectors' array (has {archive.files})")
                self.vectors = archive["vectors"]
                self.ids = archive["ids"] if "ids" in archive.files else None
                self.metadata = archive["metadata"] if "metadata" in archive.files else None
                self.documents = archive["documents"] if "documents" in archive.files else None
        except (OSError, ValueError) as exc:
            raise CliError(f"{path}: cannot read: {exc}") from exc
        if self.vectors.ndim != 2 or not np.issubdtype(self.vectors.dtype, np.number):
            raise CliError(f"{path}: vectors must be a 2-d numeric array, got {self.vectors.shape}")
        self.total, self.dim = int(self.vectors.shape[0]), int(self.vectors.shape[1])
        if ids_file is not None:
            lines = ids_file.read_text(encoding="utf-8").splitlines()
            self.ids = np.array(lines)
        for name, arr in (
            ("ids", self.ids),
            ("metadata", self.metadata),
            ("documents", self.documents),
        ):
            if arr is not None and len(arr) != self.total:
                raise CliError(f"{path}: {len(arr)} {name} for {self.total} vectors")

    def batches(self, start: int, size: int) -> Iterator[Batch]:
        meta_lines: Iterator[str] | None = None
        meta_file = None
        if self.metadata_file is not None:
            meta_file = _open_text(self.metadata_file)
            meta_lines = itertools.islice(meta_file, start, None)
        try:
            assert self.total is not None
            for lo in range(start, self.total, size):
                hi = min(lo + size, self.total)
                if self.ids is not None:
                    ids = [str(i) for i in self.ids[lo:hi].tolist()]
                else:
                    ids = [f"{self.id_prefix}{i}" for i in range(lo, hi)]
                metadata: list[dict[str, Any] | None] | None = None
                if self.metadata is not None:
                    metadata = [
                        _metadata_object(str(t), f"{self.path} row {lo + j}")
                        for j, t in enumerate(self.metadata[lo:hi].tolist())
                    ]
                elif meta_lines is not None:
                    chunk = list(itertools.islice(meta_lines, hi - lo))
                    if len(chunk) != hi - lo:
                        raise CliError(f"{self.metadata_file}: fewer lines than vectors")
                    metadata = [
                        _metadata_object(t, f"{self.metadata_file} line {lo + j + 1}")
                        for j, t in enumerate(chunk)
                    ]
                documents: list[str | None] | None = None
                if self.documents is not None:
                    documents = [
                        _document_json(str(t), f"{self.path} documents row {lo + j}")
                        for j, t in enumerate(self.documents[lo:hi].tolist())
                    ]
                vectors = np.asarray(self.vectors[lo:hi], dtype=np.float32)
                yield hi - lo, ids, vectors, metadata, documents
        finally:
            if meta_file is not None:
                meta_file.close()


class JsonlSource(Source):
    """``.jsonl[.gz]``: one record object per line. ``total`` is counted up front for
    uncompressed files (a fast newline count), unknown for .gz."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.is_file():
            raise CliError(f"{path}: no such file")
        if not path.name.endswith(".gz"):
            with path.open("rb") as f:
                self.total = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))

    def _parse(
        self, line: str, lineno: int
    ) -> tuple[str, list[float], dict[str, Any] | None, str | None]:
        where = f"{self.path} line {lineno}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"{where}: not valid JSON: {exc}") from exc
        if not isinstance(obj, dict) or "id" not in obj or "vector" not in obj:
            raise CliError(f"{where}: expected an object with 'id' and 'vector'")
        metadata = obj.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise CliError(f"{where}: 'metadata' must be an object")
        vector = obj["vector"]
        if not isinstance(vector, list) or (self.dim is not None and len(vector) != self.dim):
            raise CliError(f"{where}: 'vector' must be a list of {self.dim or 'n'} numbers")
        self.dim = len(vector)
        return str(obj["id"]), vector, metadata, _document(obj.get("document"), where)

    def peek_dim(self) -> int:
        """Read the first record to learn the vector length (sets ``dim``)."""
        with _open_text(self.path) as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    return len(self._parse(line, lineno)[1])
        raise CliError(f"{self.path}: no records")

    def batches(self, start: int, size: int) -> Iterator[Batch]:
        with _open_text(self.path) as f:
            lines = itertools.islice(enumerate(f, 1), start, None)
            while True:
                chunk = list(itertools.islice(lines, size))
                if not chunk:
                    return
                rows = [self._parse(line, n) for n, line in chunk if line.strip()]
                if not rows:
                    yield len(chunk), [], np.zeros((0, self.dim or 0), np.float32), [], None
                    continue
                try:
                    vectors = np.asarray([r[1] for r in rows], dtype=np.float32)
                except (TypeError, ValueError) as exc:
                    raise CliError(
                        f"{self.path} lines {chunk[0][0]}-{chunk[-1][0]}: bad vector: {exc}"
                    ) from exc
                metadata = [r[2] for r in rows]
                # No document in the batch: send none (an upsert without documents keeps
                # every record's own, and works against servers without documents).
                documents = [r[3] for r in rows]
                docs = documents if any(d is not None for d in documents) else None
                yield len(chunk), [r[0] for r in rows], vectors, metadata, docs


def open_source(
    path: str,
    *,
    ids_file: str | None = None,
    metadata_file: str | None = None,
    id_prefix: str = "",
) -> Source:
    """The reader for ``path``'s format (see the module docstring)."""
    p = Path(path)
    if not p.is_file():
        raise CliError(f"{path}: no such file", 2)
    fmt = _format(p)
    if fmt == ".jsonl":
        if ids_file or metadata_file:
            raise CliError("--ids / --metadata apply to .npy files only", 2)
        src = JsonlSource(p)
        src.peek_dim()
        return src
    if fmt == ".npz" and (ids_file or metadata_file):
        raise CliError("--ids / --metadata apply to .npy files only (.npz carries its own)", 2)
    return ArraySource(
        p,
        ids_file=Path(ids_file) if ids_file else None,
        metadata_file=Path(metadata_file) if metadata_file else None,
        id_prefix=id_prefix,
    )


def _tmp_path(path: Path) -> Path:
    return path.with_name(path.name + ".keeldb-tmp")


def _replace(tmp: Path, path: Path) -> None:
    """Atomically put ``tmp`` at ``path`` (fsync file, rename, fsync directory)."""
    with tmp.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_jsonl_records(path: str, pages: Iterator[list[Any]]) -> int:
    """Write records (objects with ``id``, ``vector``, ``metadata``, and ``document``
    when the record has one) as .jsonl[.gz],
    atomically: the file appears complete or not at all. Returns the record count."""
    target = Path(path)
    tmp = _tmp_path(target)
    n = 0
    try:
        raw = gzip.open(tmp, "wb") if target.name.endswith(".gz") else tmp.open("wb")
        with io.TextIOWrapper(raw, encoding="utf-8") as out:
            for records in pages:
                for r in records:
                    line = {"id": r.id, "vector": r.vector.tolist(), "metadata": r.metadata}
                    if r.document is not None:
                        line["document"] = r.document
                    out.write(json.dumps(line, separators=(",", ":")) + "\n")
                    n += 1
        _replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


def write_npz_records(path: str, pages: Iterator[list[Any]], dim: int) -> int:
    """Write records as .npz (``vectors``, ``ids``, ``metadata`` JSON strings, and
    ``documents`` JSON strings when any record has a document), atomically. Holds the
    whole export in memory. Returns the record count."""
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    metadata: list[str] = []
    documents: list[str] = []
    has_documents = False
    for records in pages:
        for r in records:
            ids.append(r.id)
            vectors.append(r.vector)
            metadata.append(json.dumps(r.metadata, separators=(",", ":")))
            documents.append(json.dumps(r.document))
            has_documents = has_documents or r.document is not None
    arrays: dict[str, Any] = {
        "vectors": np.stack(vectors) if vectors else np.zeros((0, dim), np.float32),
        "ids": np.array(ids, dtype=str),
        "metadata": np.array(metadata, dtype=str),
    }
    if has_documents:
        arrays["documents"] = np.array(documents, dtype=str)
    target = Path(path)
    tmp = _tmp_path(target)
    try:
        with tmp.open("wb") as f:
            np.savez(f, **arrays)
        _replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(ids)
