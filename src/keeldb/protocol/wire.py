"""The wire form of KeelDB values, shared by :mod:`keeldb.server` and :mod:`keeldb.client`.

This module imports only numpy, the standard library and KeelDB's error and value types
(never FastAPI), so the client and the CLI can use it with the base install.

Vectors travel in one of two forms, and every endpoint that takes vectors accepts both:

* JSON lists: ``[0.1, 0.2, ...]`` for one vector, ``[[...], [...]]`` for a batch. Easy to
  type with curl; about 20 bytes per float.
* An encoded array: ``{"dtype": "float32", "shape": [n, dim], "data": "<base64>"}`` where
  ``data`` is the base64 (RFC 4648, with padding) of the array's bytes, little-endian
  float32, row-major. 4 bytes per float before base64 (5.3 after). The Python client always
  sends this form and asks for it back (``"vector_encoding": "base64"``).

Responses that carry vectors (``get``, ``scan``) use the encoding the request names in
``vector_encoding`` (``"json"`` by default, so a curl user reads plain numbers).
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, Literal

import numpy as np

from keeldb.errors import InvalidArgumentError
from keeldb.types import (
    CollectionInfo,
    CollectionStats,
    CompactionReport,
    Hit,
    Page,
    PartBytes,
    Record,
    SegmentStats,
    TextIndexStats,
)

__all__ = [
    "VectorEncoding",
    "decode_vector",
    "decode_vectors",
    "encode_array",
    "encode_vector",
    "hit_from_wire",
    "hit_to_wire",
    "info_from_wire",
    "info_to_wire",
    "page_from_wire",
    "record_from_wire",
    "record_to_wire",
    "report_from_wire",
    "report_to_wire",
    "stats_from_wire",
    "stats_to_wire",
]

VectorEncoding = Literal["json", "base64"]

# Little-endian float32 whatever the host's byte order ("<f4"), as the format promises.
_WIRE_DTYPE = np.dtype("<f4")


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """Encode a float array as ``{"dtype": "float32", "shape": [...], "data": base64}``.

    The array is converted to little-endian float32 first (a copy only if needed).
    """
    arr = np.ascontiguousarray(array, dtype=_WIRE_DTYPE)
    return {
        "dtype": "float32",
        "shape": list(arr.shape),
        "data": base64.b64encode(arr.tobytes()).decode("ascii"),
    }


def encode_vector(vector: np.ndarray, encoding: VectorEncoding) -> Any:
    """One stored vector in the requested ``encoding`` (a list of floats, or an encoded
    array of shape ``[dim]``)."""
    if encoding == "base64":
        return encode_array(vector)
    return np.asarray(vector, dtype=np.float32).tolist()


def _decode_encoded(obj: Mapping[str, Any], what: str) -> np.ndarray:
    dtype = obj.get("dtype", "float32")
    if dtype != "float32":
        raise InvalidArgumentError(f"{what}: dtype must be 'float32', got {dtype!r}")
    shape = obj.get("shape")
    data = obj.get("data")
    if not isinstance(data, str):
        raise InvalidArgumentError(f"{what}: 'data' must be a base64 string")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise InvalidArgumentError(f"{what}: 'shape' must be a list of 1 or 2 sizes >= 0")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidArgumentError(f"{what}: 'data' is not valid base64") from exc
    expected = 4 * math.prod(shape)  # Python ints: no overflow for absurd sizes
    if len(raw) != expected:
        raise InvalidArgumentError(
            f"{what}: shape {shape} needs {expected} bytes of float32, got {len(raw)}"
        )
    return np.frombuffer(raw, dtype=_WIRE_DTYPE).reshape(shape).astype(np.float32)


def _to_array(value: Any, what: str) -> np.ndarray:
    if isinstance(value, Mapping):
        arr = _decode_encoded(value, what)
    else:
        if isinstance(value, str | bytes) or not isinstance(value, Sequence):
            raise InvalidArgumentError(f"{what}: expected a list of numbers or an encoded array")
        try:
            # Values beyond float32 become inf (caught below), not a warning.
            with np.errstate(over="ignore", invalid="ignore"):
                arr = np.asarray(value, dtype=np.float32)
        except (ValueError, TypeError, OverflowError) as exc:
            raise InvalidArgumentError(f"{what}: not a rectangular list of numbers") from exc
    if not np.isfinite(arr).all():
        raise InvalidArgumentError(f"{what}: contains NaN or infinity")
    return arr


def decode_vector(value: Any, what: str = "vector") -> np.ndarray:
    """Decode one query vector (list of numbers or encoded array of shape ``[dim]``).

    Returns a 1-d float32 array. Raises :class:`InvalidArgumentError` naming ``what`` when
    the value is malformed, not 1-d, empty, or holds NaN/infinity.
    """
    arr = _to_array(value, what)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise InvalidArgumentError(f"{what}: expected one non-empty vector, got shape {arr.shape}")
    return arr


def decode_vectors(value: Any, what: str = "vectors") -> np.ndarray:
    """Decode a batch (list of lists, or encoded array of shape ``[n, dim]``).

    Returns a 2-d float32 array (``n`` may be 0). Raises :class:`InvalidArgumentError`
    when malformed, ragged, not 2-d, or holding NaN/infinity.
    """
    arr = _to_array(value, what)
    if arr.ndim == 1 and arr.shape[0] == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise InvalidArgumentError(f"{what}: expected shape [n, dim], got {list(arr.shape)}")
    return arr


# --- value types <-> JSON -------------------------------------------------------------


def record_to_wire(record: Record, encoding: VectorEncoding) -> dict[str, Any]:
    """A :class:`Record` as ``{"id", "vector", "metadata", "document"}`` (``document``
    null when the record has none)."""
    return {
        "id": record.id,
        "vector": encode_vector(record.vector, encoding),
        "metadata": record.metadata,
        "document": record.document,
    }


def record_from_wire(obj: Mapping[str, Any]) -> Record:
    """Rebuild a :class:`Record` (either vector encoding; ``document`` absent, as from a
    server before documents existed, is None)."""
    return Record(
        id=obj["id"],
        vector=decode_vector(obj["vector"], f"record {obj['id']!r}"),
        metadata=dict(obj.get("metadata") or {}),
        document=obj.get("document"),
    )


def hit_to_wire(hit: Hit) -> dict[str, Any]:
    """A :class:`Hit` as ``{"id", "distance", "metadata", "document", "score"}``
    (``score`` null for a vector search's hits)."""
    score = hit.score
    return {
        "id": hit.id,
        "distance": float(hit.distance),
        "metadata": hit.metadata,
        "document": hit.document,
        "score": None if score is None else float(score),
    }


def hit_from_wire(obj: Mapping[str, Any]) -> Hit:
    """Rebuild a :class:`Hit` (``metadata`` null: a search with ``with_metadata=False``;
    ``document`` and ``score`` absent, as from a server before documents existed: None)."""
    meta = obj["metadata"]
    score = obj.get("score")
    return Hit(
        obj["id"],
        float(obj["distance"]),
        None if meta is None else dict(meta),
        obj.get("document"),
        None if score is None else float(score),
    )


def page_from_wire(obj: Mapping[str, Any]) -> Page:
    """Rebuild a scan :class:`Page` from ``{"records", "next_cursor"}``."""
    return Page(
        records=[record_from_wire(r) for r in obj["records"]],
        next_cursor=obj.get("next_cursor"),
    )


def info_to_wire(info: CollectionInfo) -> dict[str, Any]:
    """A :class:`CollectionInfo` as a flat JSON object with the same field names."""
    return {
        "name": info.name,
        "workspace": info.workspace,
        "dim": int(info.dim),
        "metric": info.metric,
        "count": int(info.count),
        "m": int(info.m),
        "ef_construction": int(info.ef_construction),
        "ef_search": int(info.ef_search),
        "created_at": float(info.created_at),
        "index_type": info.index_type,
        "quantization": info.quantization,
        **({"damaged": info.damaged} if info.damaged is not None else {}),
        **({"embedding": info.embedding} if info.embedding is not None else {}),
        **({"analyzer": info.analyzer} if info.analyzer is not None else {}),
    }


def info_from_wire(obj: Mapping[str, Any]) -> CollectionInfo:
    """Rebuild a :class:`CollectionInfo` (fields a server does not send keep their
    defaults: ``damaged`` is sent only for a damaged collection)."""
    return CollectionInfo(**{k: obj[k] for k in CollectionInfo.__dataclass_fields__ if k in obj})


def _segment_to_wire(seg: SegmentStats) -> dict[str, Any]:
    return {
        "segment_id": int(seg.segment_id),
        "kind": seg.kind,
        "rows": int(seg.rows),
        "live": int(seg.live),
        "deleted": int(seg.deleted),
        "disk_bytes": int(seg.disk_bytes),
        "memory_bytes": int(seg.memory_bytes),
        # JSON object keys are strings; the level number comes back as int on decode.
        "hnsw_levels": {str(k): int(v) for k, v in seg.hnsw_levels.items()},
        "hnsw_avg_edges": float(seg.hnsw_avg_edges),
        "parts": _parts_to_wire(seg.parts),
        "resident_bytes": int(seg.resident_bytes),
    }


def _parts_to_wire(parts: Mapping[str, PartBytes]) -> dict[str, Any]:
    return {
        name: {"resident_bytes": int(p.resident_bytes), "disk_bytes": int(p.disk_bytes)}
        for name, p in parts.items()
    }


def _parts_from_wire(obj: Mapping[str, Any]) -> dict[str, PartBytes]:
    return {
        name: PartBytes(int(p["resident_bytes"]), int(p["disk_bytes"])) for name, p in obj.items()
    }


def stats_to_wire(stats: CollectionStats) -> dict[str, Any]:
    """A :class:`CollectionStats` as JSON (``hnsw_levels`` keys become strings)."""
    return {
        "name": stats.name,
        "workspace": stats.workspace,
        "live_count": int(stats.live_count),
        "deleted_count": int(stats.deleted_count),
        "segments": [_segment_to_wire(s) for s in stats.segments],
        "index_type": stats.index_type,
        "hnsw_levels": {str(k): int(v) for k, v in stats.hnsw_levels.items()},
        "hnsw_avg_edges": float(stats.hnsw_avg_edges),
        "memory_bytes": int(stats.memory_bytes),
        "disk_bytes": int(stats.disk_bytes),
        "wal_bytes": int(stats.wal_bytes),
        "embedding": stats.embedding,
        "analyzer": stats.analyzer,
        "parts": _parts_to_wire(stats.parts),
        "resident_bytes": int(stats.resident_bytes),
        "text": None if stats.text is None else {k: int(v) for k, v in asdict(stats.text).items()},
    }


def _levels(obj: Mapping[str, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in obj.items()}


def stats_from_wire(obj: Mapping[str, Any]) -> CollectionStats:
    """Rebuild a :class:`CollectionStats` (level keys back to ``int``). Fields this
    version does not know (added by a later server) are ignored; fields an older server
    does not send (``embedding``, ``analyzer``) keep their defaults."""
    known = SegmentStats.__dataclass_fields__
    segments = [
        SegmentStats(
            **{k: v for k, v in s.items() if k in known and k not in ("hnsw_levels", "parts")},
            hnsw_levels=_levels(s.get("hnsw_levels", {})),
            parts=_parts_from_wire(s.get("parts", {})),
        )
        for s in obj["segments"]
    ]
    fields = {
        k: obj[k]
        for k in CollectionStats.__dataclass_fields__
        if k not in ("segments", "text") and k in obj
    }
    fields["hnsw_levels"] = _levels(fields["hnsw_levels"])
    fields["parts"] = _parts_from_wire(obj.get("parts", {}))
    text = obj.get("text")  # absent from an older server
    text_known = TextIndexStats.__dataclass_fields__
    fields["text"] = (
        None
        if text is None
        else TextIndexStats(**{k: v for k, v in text.items() if k in text_known})
    )
    return CollectionStats(segments=segments, **fields)


def report_to_wire(report: CompactionReport) -> dict[str, Any]:
    """A :class:`CompactionReport` as JSON."""
    return {
        "segments_before": int(report.segments_before),
        "segments_after": int(report.segments_after),
        "rows_removed": int(report.rows_removed),
        "rows_indexed": int(report.rows_indexed),
        "duration_s": float(report.duration_s),
    }


def report_from_wire(obj: Mapping[str, Any]) -> CompactionReport:
    """Rebuild a :class:`CompactionReport`."""
    return CompactionReport(**{k: obj[k] for k in CompactionReport.__dataclass_fields__})
