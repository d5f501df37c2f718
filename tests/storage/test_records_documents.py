"""WAL batch records with documents: op 3, and op 1 unchanged (backward compatible)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from keeldb.storage.records import DeleteOp, UpsertOp, decode_batch, encode_batch


def _payload(batch) -> bytes:
    return b"".join(bytes(c) for c in encode_batch(batch))


def test_documents_round_trip() -> None:
    batch = [
        UpsertOp(["a", "b"], np.ones((2, 3), np.float32), [{"k": 1}, None],
                 documents=["héllo wörld", None]),
        DeleteOp(["z"]),
        UpsertOp(["c"], np.zeros((1, 3), np.float32), [{}], documents=[""]),
    ]  # fmt: skip
    got = decode_batch(_payload(batch))
    assert got[0].documents == ["héllo wörld", None]
    assert got[2].documents == [""]
    assert got[0].ids == ["a", "b"] and got[0].metadata == [{"k": 1}, None]
    np.testing.assert_array_equal(got[0].vectors, batch[0].vectors)


def test_upsert_without_documents_is_byte_identical_to_format_1() -> None:
    # The worked example of docs/format.md: op 1 bytes as written before documents existed.
    op = UpsertOp(["a"], np.array([[0.6, 0.8]], np.float32), [{"k": 1}])
    expected = (
        struct.pack("<I", 1) + bytes([1, 0, 0, 0]) + struct.pack("<IIII", 1, 2, 5, 9)
        + b'["a"][{"k":1}]' + np.array([0.6, 0.8], "<f4").tobytes()
    )  # fmt: skip
    assert _payload([op]) == expected
    (decoded,) = decode_batch(expected)
    assert isinstance(decoded, UpsertOp) and decoded.documents is None


def test_op3_layout() -> None:
    op = UpsertOp(["a"], np.array([[1.0]], np.float32), [None], documents=["hi"])
    p = _payload([op])
    assert p[4] == 3
    assert struct.unpack_from("<IIIIII", p, 8) == (1, 1, 5, 6, 6, 0)
    assert p[32:49] == b'["a"][null]["hi"]'


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p[:-1],  # truncated
        lambda p: p[:28] + b"\x01" + p[29:],  # reserved field non-zero
        lambda p: p.replace(b'["hi"]', b"[5.0 ]"),  # documents not strings
        lambda p: p.replace(b'["hi"]', b'["h",1]'),  # wrong count / type
    ],
)
def test_damaged_op3_is_refused(mutate) -> None:
    op = UpsertOp(["a"], np.array([[1.0]], np.float32), [None], documents=["hi"])
    with pytest.raises(ValueError):
        decode_batch(mutate(_payload([op])))
