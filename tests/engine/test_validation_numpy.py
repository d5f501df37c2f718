"""numpy inputs to the embedded API (issue 17, item 8).

numpy arrays of ids were refused (``ids must be a list of strings, got ndarray``) while the
client took them; numpy scalars in metadata were refused; and a vector component outside
float32's range leaked numpy's ``RuntimeWarning: overflow encountered in cast`` before the
error (pytest runs with warnings as errors, so these tests fail on any leaked warning).
"""

from __future__ import annotations

import numpy as np
import pytest

import keeldb
from keeldb import InvalidArgumentError
from keeldb.engine.validation import (
    validate_ids,
    validate_metadata,
    validate_query,
    validate_vectors,
)

# --- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [None, object, "U8"])
def test_numpy_ids_are_plain_strings(dtype: object) -> None:
    ids = validate_ids(np.array(["a", "bb", "ccc"], dtype=dtype))
    assert ids == ["a", "bb", "ccc"]
    assert all(type(i) is str for i in ids)


def test_numpy_ids_keep_their_checks() -> None:
    with pytest.raises(InvalidArgumentError, match="appears more than once"):
        validate_ids(np.array(["a", "a"]))
    with pytest.raises(InvalidArgumentError, match=r"ids\[1\] must be a string, got int"):
        validate_ids(np.array(["a", 3], dtype=object))
    with pytest.raises(InvalidArgumentError, match=r"ids\[0\] must be a string, got bytes"):
        validate_ids(np.array([b"a"]))
    with pytest.raises(InvalidArgumentError, match=r"ids\[0\] is empty"):
        validate_ids(np.array([""]))
    with pytest.raises(InvalidArgumentError, match="1-dimensional"):
        validate_ids(np.array([["a", "b"]]))
    with pytest.raises(InvalidArgumentError, match="1-dimensional"):
        validate_ids(np.array("a"))


def test_empty_numpy_ids() -> None:
    assert validate_ids(np.array([], dtype=str)) == []


# --- metadata -----------------------------------------------------------------------------


def test_numpy_scalars_in_metadata_become_plain_json_values() -> None:
    meta = [
        {
            "i": np.int64(-3),
            "u": np.uint64(2**64 - 1),
            "small": np.int8(7),
            "f": np.float32(0.5),
            "d": np.float64(0.25),
            "b": np.bool_(True),
            "zero_d": np.array(4),
            "nested": {"list": [np.int32(1), np.float16(1.5), np.bool_(False)]},
        },
        None,
    ]
    copied, text = validate_metadata(meta, 2)
    assert copied == [
        {
            "i": -3,
            "u": 2**64 - 1,
            "small": 7,
            "f": 0.5,
            "d": 0.25,
            "b": True,
            "zero_d": 4,
            "nested": {"list": [1, 1.5, False]},
        },
        None,
    ]
    first = copied[0]
    assert first is not None
    assert type(first["i"]) is int and type(first["f"]) is float and type(first["b"]) is bool
    assert type(first["zero_d"]) is int
    assert type(first["nested"]["list"][2]) is bool
    assert text.startswith(b'[{"i":-3,')


def test_float32_metadata_is_stored_as_its_exact_value() -> None:
    (copied,), _ = validate_metadata([{"x": np.float32(0.1)}], 1)
    assert copied == {"x": float(np.float32(0.1))}  # numpy's .item(): no value is invented


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.float32("nan"), r"metadata\[0\]\.x: nan is not a finite number"),
        (np.float64("inf"), r"metadata\[0\]\.x: inf is not a finite number"),
        (np.array([1, 2]), r"metadata\[0\]\.x: ndarray is not a JSON value .*tolist"),
        (np.datetime64("2024-01-01"), r"metadata\[0\]\.x: datetime64 is not a JSON value"),
        (np.complex64(1j), r"metadata\[0\]\.x: complex64 is not a JSON value"),
    ],
)
def test_numpy_values_json_cannot_hold_are_still_refused(value: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        validate_metadata([{"x": value}], 1)


# --- vectors out of float32's range --------------------------------------------------------


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
@pytest.mark.parametrize(
    "vectors",
    [
        [[1.0, 2.0, 3.0, 4.0], [1e300, 0.0, 0.0, 0.0]],
        np.array([[1.0, 2.0, 3.0, 4.0], [0.0, -1e39, 0.0, 0.0]]),
        [[1.0, 2.0, 3.0, 4.0], [2**200, 0, 0, 0]],
    ],
)
def test_vector_outside_float32_range_raises_without_a_warning(
    vectors: object, metric: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=r"vectors\[1\] .*outside float32's range"):
        validate_vectors(vectors, 2, 4, metric)


def test_huge_python_int_in_a_vector_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgumentError, match="vectors"):
        validate_vectors([[2**2000, 0, 0, 0]], 1, 4, "l2")


@pytest.mark.parametrize("single", [True, False])
def test_query_outside_float32_range_raises_without_a_warning(single: bool) -> None:
    query = [1e300, 0.0, 0.0, 0.0] if single else [[1e300, 0.0, 0.0, 0.0]]
    with pytest.raises(InvalidArgumentError, match="outside float32's range"):
        validate_query(query, 4, "cosine", single=single)


def test_nan_and_inf_are_still_named_as_such() -> None:
    with pytest.raises(InvalidArgumentError, match=r"vectors\[0\] contains NaN or infinity"):
        validate_vectors([[np.nan, 0, 0, 0]], 1, 4, "l2")
    with pytest.raises(InvalidArgumentError, match=r"vectors\[0\] contains NaN or infinity"):
        validate_vectors(np.array([[np.inf, 0, 0, 0]]), 1, 4, "l2")


# --- end to end ---------------------------------------------------------------------------


def test_numpy_ids_and_metadata_through_a_collection(db: keeldb.Database) -> None:
    col = db.create_collection("z", dim=4, metric="l2")
    ids = np.array(["a", "b", "c"])
    vectors = np.eye(4, dtype=np.float32)[:3]
    scores = np.array([0.5, 0.25, 0.125], dtype=np.float32)
    col.upsert(ids, vectors, [{"score": s, "rank": np.int64(i)} for i, s in enumerate(scores)])
    records = col.get(np.array(["b", "a"]))
    assert [r.id for r in records] == ["b", "a"]
    assert records[0].metadata == {"score": 0.25, "rank": 1}
    hits = col.search(vectors[2], k=1, filter={"rank": {"$gte": 2}})
    assert [h.id for h in hits] == ["c"]
    assert col.delete(np.array(["a", "b"])) == 2
    with pytest.raises(InvalidArgumentError, match="outside float32's range"):
        col.upsert(["d"], [[1e300, 0.0, 0.0, 0.0]])
    assert col.count() == 1
