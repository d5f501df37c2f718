"""Encoding of the WAL's batch records: the logical operations of one acknowledged write.

A batch is a list of operations applied all-or-nothing, in order: one ``upsert`` call, one
``delete`` call, or one committed transaction. Layout (little-endian, ``docs/format.md``)::

    u32 op_count
    per op:
      u8 op (1 = upsert, 2 = delete, 3 = upsert with documents), 3 bytes zero
      upsert: u32 n, u32 dim, u32 ids_len, u32 meta_len,
              ids JSON (list of n strings), metadata JSON (list of n objects or null),
              n*dim float32 vectors
      upsert with documents: u32 n, u32 dim, u32 ids_len, u32 meta_len, u32 docs_len,
              u32 0, ids JSON, metadata JSON, documents JSON (list of n strings or null),
              n*dim float32 vectors
      delete: u32 n, u32 ids_len, ids JSON

An upsert without documents (``documents is None``) is written as op 1, byte for byte as
before documents existed, so logs stay readable by older versions until a document is
written; op 3 is refused by them ("unknown op"), never half-read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from keeldb.storage.format import OP_DELETE, OP_UPSERT, OP_UPSERT_DOCS

__all__ = ["Batch", "DeleteOp", "UpsertOp", "decode_batch", "encode_batch"]

_U32 = struct.Struct("<I")
_OP = struct.Struct("<B3x")
_UPSERT = struct.Struct("<IIII")
_UPSERT_DOCS = struct.Struct("<IIIIII")
_DELETE = struct.Struct("<II")


@dataclass(slots=True)
class UpsertOp:
    """Insert or replace ``ids``; ``metadata[i] is None`` keeps an existing record's
    metadata (``{}`` for a new record). Vectors are final (already normalised).

    ``documents`` is None when the write carried no documents (every record keeps its
    document); otherwise one entry per id, where ``None`` keeps the existing record's
    document (none for a new record)."""

    ids: list[str]
    vectors: np.ndarray
    metadata: list[dict[str, Any] | None]
    metadata_json: bytes | None = None  # the encoding of ``metadata``, when already known
    documents: list[str | None] | None = None


@dataclass(slots=True)
class DeleteOp:
    """Delete ``ids`` (ids that do not exist are ignored)."""

    ids: list[str]


Batch = list[UpsertOp | DeleteOp]


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def encode_batch(batch: Batch) -> list[bytes | memoryview]:
    """Encode ``batch`` as payload chunks (vectors are not copied)."""
    chunks: list[bytes | memoryview] = [_U32.pack(len(batch))]
    for op in batch:
        if isinstance(op, UpsertOp):
            vectors = np.ascontiguousarray(op.vectors, dtype="<f4")
            ids = _dumps(op.ids)
            meta = op.metadata_json if op.metadata_json is not None else _dumps(op.metadata)
            n, dim = vectors.shape
            if op.documents is None:
                head = [_OP.pack(OP_UPSERT), _UPSERT.pack(n, dim, len(ids), len(meta)), ids, meta]
            else:
                docs = _dumps(op.documents)
                sizes = _UPSERT_DOCS.pack(n, dim, len(ids), len(meta), len(docs), 0)
                head = [_OP.pack(OP_UPSERT_DOCS), sizes, ids, meta, docs]
            chunks += head
            # memoryview cannot cast a view with a zero in its shape: an empty op has no
            # vector bytes at all (issue 17).
            chunks.append(vectors.data.cast("B") if vectors.size else b"")
        else:
            ids = _dumps(op.ids)
            chunks += [_OP.pack(OP_DELETE), _DELETE.pack(len(op.ids), len(ids)), ids]
    return chunks


def decode_batch(payload: bytes | memoryview) -> Batch:
    """Decode a batch payload. Raises ValueError on any inconsistency (the WAL reader has
    already verified the record CRC, so this means a writer bug or a forged record)."""
    buf = memoryview(payload)
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if n < 0 or pos + n > len(buf):
            raise ValueError(f"batch payload truncated at {pos}")
        out = buf[pos : pos + n]
        pos += n
        return out

    (count,) = _U32.unpack(take(4))
    batch: Batch = []
    for _ in range(count):
        (op,) = _OP.unpack(take(4))
        if op == OP_UPSERT or op == OP_UPSERT_DOCS:
            if op == OP_UPSERT:
                n, dim, ids_len, meta_len = _UPSERT.unpack(take(16))
                docs_len = -1
            else:
                n, dim, ids_len, meta_len, docs_len, zero = _UPSERT_DOCS.unpack(take(24))
                if zero:
                    raise ValueError("reserved field of an upsert op is not zero")
            ids = orjson.loads(take(ids_len))
            meta = orjson.loads(take(meta_len))
            docs = orjson.loads(take(docs_len)) if docs_len >= 0 else None
            vectors = np.frombuffer(take(n * dim * 4), dtype="<f4").reshape(n, dim).copy()
            if not (
                isinstance(ids, list) and isinstance(meta, list) and len(ids) == len(meta) == n
            ):
                raise ValueError("upsert op lengths disagree")
            if docs is not None and not (
                isinstance(docs, list)
                and len(docs) == n
                and all(d is None or isinstance(d, str) for d in docs)
            ):
                raise ValueError("upsert op documents are not n strings or nulls")
            batch.append(UpsertOp(ids, vectors, meta, documents=docs))
        elif op == OP_DELETE:
            n, ids_len = _DELETE.unpack(take(8))
            ids = orjson.loads(take(ids_len))
            if not (isinstance(ids, list) and len(ids) == n):
                raise ValueError("delete op lengths disagree")
            batch.append(DeleteOp(ids))
        else:
            raise ValueError(f"unknown op {op}")
    if pos != len(buf):
        raise ValueError("trailing bytes in batch payload")
    return batch
