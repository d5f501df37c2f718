"""The wire format shared by server and client: vectors and value types as JSON."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from keeldb.errors import InvalidArgumentError
from keeldb.protocol import wire
from keeldb.types import (
    CollectionStats,
    CompactionReport,
    Hit,
    Record,
    SegmentStats,
    TextIndexStats,
)

finite32 = st.floats(width=32, allow_nan=False, allow_infinity=False)


@settings(max_examples=50, deadline=None)
@given(arrays(np.float32, st.tuples(st.integers(1, 5), st.integers(1, 9)), elements=finite32))
def test_encoded_batches_roundtrip_bit_exact_through_json(vectors: np.ndarray) -> None:
    sent = json.loads(json.dumps(wire.encode_array(vectors)))
    np.testing.assert_array_equal(wire.decode_vectors(sent), vectors)
    as_lists = json.loads(json.dumps(vectors.tolist()))
    np.testing.assert_array_equal(wire.decode_vectors(as_lists), vectors)


def test_data_is_little_endian_float32() -> None:
    encoded = wire.encode_array(np.array([1.0, -2.0], dtype=">f8"))  # any input dtype/order
    assert encoded["shape"] == [2]
    assert base64.b64decode(encoded["data"]) == np.array([1.0, -2.0], "<f4").tobytes()


@pytest.mark.parametrize(
    "value",
    [
        "1,2,3",
        7,
        [],
        [[1.0, 2.0], [3.0]],
        [1.0, float("nan")],
        [1.0, float("inf")],
        [1e39, 1.0],
        {"shape": [2], "data": "AAAA"},  # 3 bytes for 2 floats
        {"shape": [2], "data": "not base64!"},
        {"shape": [2], "data": base64.b64encode(b"\0" * 8).decode(), "dtype": "float16"},
        {"shape": [1, 1, 2], "data": base64.b64encode(b"\0" * 8).decode()},
        {"shape": [True, 2], "data": base64.b64encode(b"\0" * 8).decode()},
        {"shape": "2", "data": ""},
        {"data": ""},
    ],
)
def test_malformed_vectors_are_invalid_argument(value: object) -> None:
    with pytest.raises(InvalidArgumentError):
        wire.decode_vector(value)


def test_batches_must_be_two_dimensional() -> None:
    assert wire.decode_vectors([]).shape == (0, 0)
    with pytest.raises(InvalidArgumentError, match=r"\[n, dim\]"):
        wire.decode_vectors([1.0, 2.0])


def test_value_types_roundtrip() -> None:
    rec = Record("a", np.array([0.5, 0.25], np.float32), {"x": [1, 2]})
    for encoding in ("json", "base64"):
        back = wire.record_from_wire(json.loads(json.dumps(wire.record_to_wire(rec, encoding))))
        assert back.id == "a" and back.metadata == {"x": [1, 2]}
        np.testing.assert_array_equal(back.vector, rec.vector)
    hit = Hit("h", 0.125, {"y": None})
    assert wire.hit_from_wire(json.loads(json.dumps(wire.hit_to_wire(hit)))) == hit
    seg = SegmentStats(3, "hnsw", 10, 9, 1, 100, 200, {0: 9, 1: 2}, 7.5)
    stats = CollectionStats("c", "w", 9, 1, [seg], "hnsw", {0: 9, 1: 2}, 7.5, 200, 100, 64)
    assert wire.stats_from_wire(json.loads(json.dumps(wire.stats_to_wire(stats)))) == stats
    report = CompactionReport(3, 1, 5, 10, 0.5)
    assert wire.report_from_wire(json.loads(json.dumps(wire.report_to_wire(report)))) == report


def test_stats_from_a_newer_server_ignore_fields_this_client_does_not_know() -> None:
    """A later server may add fields to a collection's or a segment's stats; this client
    keeps the ones it knows instead of failing."""
    seg = SegmentStats(3, "hnsw", 10, 9, 1, 100, 200, {0: 9, 1: 2}, 7.5)
    stats = CollectionStats("c", "w", 9, 1, [seg], "hnsw", {0: 9, 1: 2}, 7.5, 200, 100, 64)
    obj = json.loads(json.dumps(wire.stats_to_wire(stats)))
    obj["future_total"] = 1
    obj["segments"][0]["hnsw_vectors"] = "float16"
    assert wire.stats_from_wire(obj) == stats


def test_stats_text_round_trips_and_is_none_from_an_older_server() -> None:
    seg = SegmentStats(0, "hnsw", 9, 9, 0, 100, 200, {0: 9}, 7.5)
    text = TextIndexStats(documents=8, terms=30, postings=55, memory_bytes=4096, disk_bytes=900)
    stats = CollectionStats("c", "w", 9, 0, [seg], "hnsw", {0: 9}, 7.5, 200, 100, 64, text=text)
    obj = json.loads(json.dumps(wire.stats_to_wire(stats)))
    assert wire.stats_from_wire(obj) == stats
    del obj["text"]  # a server from before the field
    assert wire.stats_from_wire(obj).text is None
