"""WAL batch records with empty operations encode and decode (issue 17, item 1)."""

from __future__ import annotations

import numpy as np

from keeldb.storage.records import DeleteOp, UpsertOp, decode_batch, encode_batch


def _payload(chunks: list[bytes | memoryview]) -> bytes:
    return b"".join(bytes(c) for c in chunks)


def test_empty_upsert_op_round_trips() -> None:
    batch = [UpsertOp([], np.zeros((0, 4), np.float32), []), DeleteOp([])]
    decoded = decode_batch(_payload(encode_batch(batch)))
    assert len(decoded) == 2
    up, de = decoded
    assert isinstance(up, UpsertOp) and isinstance(de, DeleteOp)
    assert up.ids == [] and up.metadata == [] and up.vectors.shape == (0, 4)
    assert de.ids == []


def test_empty_op_next_to_a_real_one_keeps_the_real_one_intact() -> None:
    vec = np.arange(8, dtype=np.float32).reshape(2, 4)
    batch = [UpsertOp([], np.zeros((0, 4), np.float32), []), UpsertOp(["a", "b"], vec, [{}, {}])]
    empty, real = decode_batch(_payload(encode_batch(batch)))
    assert isinstance(empty, UpsertOp) and isinstance(real, UpsertOp)
    assert empty.vectors.shape == (0, 4)
    assert real.ids == ["a", "b"]
    np.testing.assert_array_equal(real.vectors, vec)
