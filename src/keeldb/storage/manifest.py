"""The manifest: the single commit point naming a collection's live files.

``MANIFEST`` is a framed file (magic ``KEELMANI``) whose payload is UTF-8 JSON. It is only
ever replaced atomically (temp file, fsync, rename, directory fsync), so after any crash
it is either the old or the new one. Sealing, merging, vacuuming and tombstone
checkpoints all finish by writing a new manifest; files it does not name are garbage.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from keeldb.errors import CorruptionError
from keeldb.storage.fileio import FileSystem
from keeldb.storage.format import (
    MAGIC_MANIFEST,
    MANIFEST_NAME,
    SEGMENT_EXTENSIONS,
    segment_file_name,
)
from keeldb.storage.framed import read_framed, write_framed

__all__ = [
    "QUANTIZATIONS",
    "CollectionConfig",
    "Manifest",
    "SegmentEntry",
    "live_files",
    "read_manifest",
    "segment_files",
    "default_quantization",
    "write_manifest",
]

# How a collection's HNSW graphs keep their copy of the vectors (docs/params.md):
# ``none`` float32, ``fp16`` float16, ``sq8`` 8-bit scalar quantised (one byte per
# component). Returned distances are exact under every one (reduced copies are re-scored
# against the float32 vectors).
QUANTIZATIONS = ("none", "fp16", "sq8")


def default_quantization(metric: str) -> str:
    """What graphs kept before the option existed, and the default: ``fp16`` under
    ``cosine`` (unit vectors fit float16's range), ``none`` under ``l2`` and ``ip``
    (unbounded ranges overflow float16)."""
    return "fp16" if metric == "cosine" else "none"


@dataclass(frozen=True, slots=True)
class CollectionConfig:
    """A collection's fixed parameters (never change after creation).

    ``embedding`` (issue 14): the collection's embedding function as
    ``{"name": str, "config": {...}}`` (re-created through
    :func:`keeldb.embeddings.from_config`), or None. ``text``: the analyser's
    :meth:`keeldb.text.Analyzer.config`, or None for the default analyser (manifests
    written before these fields existed). Both are omitted from the manifest JSON when
    None, so older manifests read and re-write unchanged (``docs/format.md``).

    ``quantization`` is one of :data:`QUANTIZATIONS`; None (a manifest written before the
    field existed) reads as :func:`default_quantization` of the metric, which is what
    those versions built."""

    name: str
    workspace: str
    dim: int
    metric: str
    m: int
    ef_construction: int
    ef_search: int
    created_at: float
    quantization: str | None = None
    embedding: dict[str, Any] | None = None
    text: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.quantization is None:
            object.__setattr__(self, "quantization", default_quantization(self.metric))

    @property
    def graph_quantization(self) -> str:
        """:attr:`quantization`, resolved (never None)."""
        assert self.quantization is not None
        return self.quantization

    def to_dict(self) -> dict[str, Any]:
        """The config as manifest JSON (``embedding`` / ``text`` only when set)."""
        doc = asdict(self)
        for key in ("embedding", "text"):
            if doc[key] is None:
                del doc[key]
        return doc

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CollectionConfig:
        """Parse manifest JSON (``TypeError``/``ValueError`` when malformed)."""
        config = cls(**doc)
        emb = config.embedding
        if emb is not None and (
            not isinstance(emb, dict)
            or not isinstance(emb.get("name"), str)
            or not isinstance(emb.get("config"), dict)
        ):
            raise ValueError("embedding must be {name: str, config: object}")
        if config.text is not None and not isinstance(config.text, dict):
            raise ValueError("text must be an analyser config object")
        return config


@dataclass(frozen=True, slots=True)
class SegmentEntry:
    """One sealed segment: ``kind`` is ``flat`` or ``hnsw``; ``tombstones`` names its
    tombstone file (None when it has no deleted rows at this manifest); ``documents``:
    the segment has a documents file (``.docs``, then required; omitted from the
    manifest JSON when False, so manifests of collections without documents are
    unchanged)."""

    segment_id: int
    rows: int
    kind: str
    tombstones: str | None = None
    documents: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The entry as manifest JSON (``documents`` only when True)."""
        doc = asdict(self)
        if not self.documents:
            del doc["documents"]
        return doc


@dataclass(frozen=True, slots=True)
class Manifest:
    """The durable state of a collection, apart from WAL records after ``checkpoint_seq``."""

    generation: int
    config: CollectionConfig
    segments: tuple[SegmentEntry, ...] = field(default_factory=tuple)
    checkpoint_seq: int = 0
    next_segment_id: int = 1

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {
            "format": 1,
            "generation": self.generation,
            "config": self.config.to_dict(),
            "segments": [s.to_dict() for s in self.segments],
            "checkpoint_seq": self.checkpoint_seq,
            "next_segment_id": self.next_segment_id,
        }
        return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes, path: str) -> Manifest:
        try:
            doc = json.loads(raw)
            config = CollectionConfig.from_dict(doc["config"])
            segments = tuple(SegmentEntry(**s) for s in doc["segments"])
            manifest = cls(
                generation=int(doc["generation"]),
                config=config,
                segments=segments,
                checkpoint_seq=int(doc["checkpoint_seq"]),
                next_segment_id=int(doc["next_segment_id"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptionError(f"manifest content is invalid: {exc}", path=path) from exc
        ids = [s.segment_id for s in segments]
        if len(set(ids)) != len(ids) or any(i >= manifest.next_segment_id for i in ids):
            raise CorruptionError("manifest segment ids are inconsistent", path=path)
        if config.quantization not in QUANTIZATIONS:
            raise CorruptionError(
                f"manifest quantization {config.quantization!r} is unknown", path=path
            )
        if any(s.kind not in ("flat", "hnsw") or s.rows < 0 for s in segments):
            raise CorruptionError("manifest segment entry is invalid", path=path)
        return manifest


def segment_files(entry: SegmentEntry) -> tuple[list[str], list[str]]:
    """The file names of one segment at a manifest: ``(required, optional)``.

    Required: vectors, ids, metadata; for an HNSW segment also its filter columns and
    graph; the documents when the entry has them; the tombstone file when the entry
    names one. Optional: files a segment may or
    may not have (a flat segment's filter columns, which it may build in memory instead;
    derived-index files, rebuilt from the segment when missing).
    """
    sid = entry.segment_id
    required = [segment_file_name(sid, e) for e in ("vec", "ids", "meta")]
    if entry.kind == "hnsw":
        required += [segment_file_name(sid, "cols"), segment_file_name(sid, "hnsw")]
    if entry.documents:
        required.append(segment_file_name(sid, "docs"))
    if entry.tombstones:
        required.append(entry.tombstones)
    optional = [
        segment_file_name(sid, e)
        for e in SEGMENT_EXTENSIONS
        if e not in ("vec", "ids", "meta", "hnsw")
        and not (e == "cols" and entry.kind == "hnsw")
        and not (e == "docs" and entry.documents)
    ]
    return required, optional


def live_files(manifest: Manifest) -> set[str]:
    """Every file name a collection directory may hold at ``manifest`` (besides WAL
    files): the manifest itself and each segment's required and optional files."""
    names = {MANIFEST_NAME}
    for entry in manifest.segments:
        required, optional = segment_files(entry)
        names.update(required)
        names.update(optional)
    return names


def manifest_path(directory: str) -> str:
    return os.path.join(directory, MANIFEST_NAME)


def write_manifest(fs: FileSystem, directory: str, manifest: Manifest) -> None:
    """Atomically replace the collection's manifest (the commit point)."""
    write_framed(fs, manifest_path(directory), MAGIC_MANIFEST, [manifest.to_json()], atomic=True)


def read_manifest(fs: FileSystem, directory: str) -> Manifest:
    """Read and verify the manifest; CorruptionError if damaged."""
    path = manifest_path(directory)
    _, payload = read_framed(fs, path, MAGIC_MANIFEST)
    return Manifest.from_json(payload, path)
