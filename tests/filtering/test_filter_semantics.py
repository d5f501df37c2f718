"""Hand-written expectations for every operator and field state (docs/filtering.md,
"Semantics"). Each case checks the reference evaluator and the vectorised mask, on
freshly built columns and after a payload round trip."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from keeldb.filtering import MetadataColumns, compile_filter

# One row per field state of path "f".
STATES: dict[str, dict[str, Any] | None] = {
    "none_metadata": None,
    "missing": {"other": 1},
    "null": {"f": None},
    "int3": {"f": 3},
    "float3": {"f": 3.0},
    "float3_5": {"f": 3.5},
    "int1": {"f": 1},
    "true": {"f": True},
    "false": {"f": False},
    "str3": {"f": "3"},
    "str_b": {"f": "b"},
    "array": {"f": [3, "b", True, None, {"x": 1}, [1]]},
    "empty_array": {"f": []},
    "object": {"f": {"g": 1}},
    "nan": {"f": float("nan")},
}
ALL = frozenset(STATES)
ABSENT = frozenset({"none_metadata", "missing", "null"})

CASES: list[tuple[Any, frozenset[str]]] = [
    # equality: int and float are both numbers, bool is not a number, arrays never equal
    ({"f": 3}, frozenset({"int3", "float3"})),
    ({"f": 3.0}, frozenset({"int3", "float3"})),
    ({"f": {"$eq": 3}}, frozenset({"int3", "float3"})),
    ({"f": 1}, frozenset({"int1"})),
    ({"f": True}, frozenset({"true"})),
    ({"f": False}, frozenset({"false"})),
    ({"f": "3"}, frozenset({"str3"})),
    ({"f": "b"}, frozenset({"str_b"})),
    ({"f": None}, ABSENT),
    ({"f": {"$eq": None}}, ABSENT),
    ({"f": "nope"}, frozenset()),
    # $ne is the exact complement of $eq: missing, null and other types satisfy it
    ({"f": {"$ne": 3}}, ALL - {"int3", "float3"}),
    ({"f": {"$ne": True}}, ALL - {"true"}),
    ({"f": {"$ne": None}}, ALL - ABSENT),
    # ranges: numbers with numbers, strings with strings; NaN compares false
    ({"f": {"$gt": 3}}, frozenset({"float3_5"})),
    ({"f": {"$gte": 3}}, frozenset({"int3", "float3", "float3_5"})),
    ({"f": {"$lt": 3}}, frozenset({"int1"})),
    ({"f": {"$lte": 3.0}}, frozenset({"int1", "int3", "float3"})),
    ({"f": {"$gt": 0.5, "$lt": 3.2}}, frozenset({"int1", "int3", "float3"})),
    ({"f": {"$gte": "a"}}, frozenset({"str_b"})),
    ({"f": {"$lt": "a"}}, frozenset({"str3"})),
    ({"f": {"$lte": "b"}}, frozenset({"str3", "str_b"})),
    # $in / $nin
    ({"f": {"$in": [3, "b"]}}, frozenset({"int3", "float3", "str_b"})),
    ({"f": {"$in": [True, 1.0]}}, frozenset({"true", "int1"})),
    ({"f": {"$in": [None, "3"]}}, ABSENT | {"str3"}),
    ({"f": {"$in": []}}, frozenset()),
    ({"f": {"$nin": [3, "b"]}}, ALL - {"int3", "float3", "str_b"}),
    ({"f": {"$nin": [None]}}, ALL - ABSENT),
    ({"f": {"$nin": []}}, ALL),
    # $exists: null counts as absent
    ({"f": {"$exists": True}}, ALL - ABSENT),
    ({"f": {"$exists": False}}, ABSENT),
    # $contains: only arrays, element equality with the same kind rules
    ({"f": {"$contains": 3}}, frozenset({"array"})),
    ({"f": {"$contains": 3.0}}, frozenset({"array"})),
    ({"f": {"$contains": "b"}}, frozenset({"array"})),
    ({"f": {"$contains": True}}, frozenset({"array"})),
    ({"f": {"$contains": 1}}, frozenset()),  # True in the array is not 1
    ({"f": {"$contains": False}}, frozenset()),
    # combinators
    ({"$not": {"f": 3}}, ALL - {"int3", "float3"}),
    ({"f": {"$not": {"$gt": 3}}}, ALL - {"float3_5"}),
    ({"$or": [{"f": 1}, {"f": "b"}]}, frozenset({"int1", "str_b"})),
    ({"$and": [{"f": {"$gte": 1}}, {"f": {"$lt": 3}}]}, frozenset({"int1"})),
    ({"$and": [{"f": 3}]}, frozenset({"int3", "float3"})),
    ({}, ALL),
    ({"$not": {}}, frozenset()),
    ({"$and": [{}, {"f": True}]}, frozenset({"true"})),
    # the object path itself, and a path below it
    ({"f.g": 1}, frozenset({"object"})),
    ({"f.g": {"$exists": False}}, ALL - {"object"}),
    # a path nobody has
    ({"zzz": {"$gt": 0}}, frozenset()),
    ({"zzz": {"$ne": 0}}, ALL),
    ({"zzz": None}, ALL),
]


def _columns_variants(rows: Sequence[Any]) -> list[MetadataColumns]:
    built = MetadataColumns.build(rows)
    appended = MetadataColumns()
    for row in rows:
        appended.append([row])
    return [built, appended, MetadataColumns.from_bytes(built.to_bytes())]


@pytest.mark.parametrize(("spec", "expected"), CASES, ids=[repr(c[0]) for c in CASES])
def test_operator_against_every_field_state(spec: Any, expected: frozenset[str]) -> None:
    names = list(STATES)
    rows = [STATES[name] for name in names]
    f = compile_filter(spec)
    by_reference = {name for name, row in zip(names, rows, strict=True) if f.matches(row)}
    assert by_reference == expected
    for columns in _columns_variants(rows):
        mask = f.mask(columns)
        assert mask.dtype == np.bool_ and mask.shape == (len(rows),)
        assert {name for name, hit in zip(names, mask, strict=True) if hit} == expected


def check(spec: Any, rows: Sequence[Any], expected: list[bool]) -> None:
    """Reference and mask (built, appended, round-tripped) all give ``expected``."""
    f = compile_filter(spec)
    assert [f.matches(row) for row in rows] == expected
    for columns in _columns_variants(rows):
        assert f.mask(columns).tolist() == expected


def test_implicit_and_of_fields() -> None:
    rows = [{"lang": "en", "year": 2024}, {"lang": "en", "year": 2023}, {"lang": "fr"}]
    check({"lang": "en", "year": 2024}, rows, [True, False, False])


def test_dotted_paths_reach_nested_objects() -> None:
    rows: list[dict[str, Any] | None] = [
        {"author": {"name": "ada", "born": {"year": 1815}}},
        {"author": {"name": "alan"}},
        {"author": "ada"},
        {"author.name": "ada"},  # a flat dotted key is the same path
        {},
    ]
    check({"author.name": "ada"}, rows, [True, False, False, True, False])
    check({"author.born.year": {"$lt": 1900}}, rows, [True, False, False, False, False])
    check({"author": {"$exists": True}}, rows, [True, True, True, False, False])
    check({"author": "ada"}, rows, [False, False, True, False, False])


def test_duplicate_path_in_one_row_first_value_wins() -> None:
    rows: list[dict[str, Any] | None] = [
        {"a.b": 1, "a": {"b": 2, "c": 3}},
        {"a": {"b": 2}, "a.b": 1},
    ]
    check({"a.b": 1}, rows, [True, False])
    check({"a.b": 2}, rows, [False, True])
    check({"a.c": 3}, rows, [True, False])
    # A duplicated path's own value is dropped, but its children are still reachable.
    nested: list[dict[str, Any] | None] = [{"a.b": 1, "a": {"b": {"c": 5}}}]
    check({"a.b": 1}, nested, [True])
    check({"a.b.c": 5}, nested, [True])


def test_ints_compare_exactly_beyond_float_precision() -> None:
    big = 2**53
    rows = [{"n": big}, {"n": big + 1}, {"n": float(big)}, {"n": 2**63 - 1}, {"n": -(2**63)}]
    check({"n": big + 1}, rows, [False, True, False, False, False])
    check({"n": big}, rows, [True, False, True, False, False])
    check({"n": {"$gt": big}}, rows, [False, True, False, True, False])
    check({"n": {"$gte": big + 1}}, rows, [False, True, False, True, False])
    check({"n": {"$lt": big + 1}}, rows, [True, False, True, False, True])
    check({"n": {"$gt": float(big)}}, rows, [False, True, False, True, False])
    check({"n": {"$in": [big + 1, 2**63 - 1]}}, rows, [False, True, False, True, False])
    check({"n": {"$lt": -9.2e18}}, rows, [False, False, False, False, True])
    check({"n": {"$gt": 9.2e18}}, rows, [False, False, False, True, False])
    # float literals beyond the int64 range
    check({"n": {"$lt": -9.3e18}}, rows, [False, False, False, False, False])
    check({"n": {"$gt": -9.3e18}}, rows, [True, True, True, True, True])
    check({"n": {"$gt": 9.3e18}}, rows, [False, False, False, False, False])
    check({"n": {"$lte": 9.3e18}}, rows, [True, True, True, True, True])
    check({"n": 9.3e18}, rows, [False, False, False, False, False])
    check({"n": {"$gt": 0.5}}, rows, [True, True, True, True, False])


def test_float_field_against_unrepresentable_int_literal() -> None:
    # 2**53 + 1 has no float64; the nearest floats are 2**53 and 2**53 + 2.
    rows = [{"x": 2.0**53}, {"x": 2.0**53 + 2}]
    check({"x": 2**53 + 1}, rows, [False, False])
    check({"x": {"$gt": 2**53 + 1}}, rows, [False, True])
    check({"x": {"$lte": 2**53 + 1}}, rows, [True, False])


def test_ints_outside_int64_in_metadata_are_stored_as_float() -> None:
    rows = [{"n": 2**64 + 1}, {"n": -(10**400)}, {"n": 5}]
    check({"n": {"$gt": 2**63 - 1}}, rows, [True, False, False])
    check({"n": 1.8446744073709552e19}, rows, [True, False, False])
    check({"n": {"$lt": -1e308}}, rows, [False, True, False])


def test_negative_zero_equals_zero() -> None:
    rows = [{"x": -0.0}, {"x": 0}, {"x": 0.0}]
    check({"x": 0}, rows, [True, True, True])
    check({"x": {"$in": [-0.0]}}, rows, [True, True, True])
    check({"x": {"$gt": -0.0}}, rows, [False, False, False])


def test_nan_and_infinity_in_metadata() -> None:
    rows = [{"x": float("nan")}, {"x": float("inf")}, {"x": -float("inf")}, {"x": 1}]
    check({"x": {"$gt": 1e308}}, rows, [False, True, False, False])
    check({"x": {"$lt": 0}}, rows, [False, False, True, False])
    check({"x": {"$ne": 1}}, rows, [True, True, True, False])
    check({"x": {"$exists": True}}, rows, [True, True, True, True])


def test_unicode_strings_compare_by_code_point() -> None:
    values = ["", "a", "a\x00", "ab", "z", "é", "中文", "\uffff", "𝔸", "\ud800"]
    rows: list[dict[str, Any] | None] = [{"s": v} for v in values]
    for literal in ["a", "a\x00", "é", "𝔸", "\ud800", "\U0010ffff", ""]:
        for op in ("$gt", "$gte", "$lt", "$lte"):
            expected = [
                {"$gt": v > literal, "$gte": v >= literal, "$lt": v < literal}.get(op, v <= literal)
                for v in values
            ]
            check({"s": {op: literal}}, rows, expected)
        check({"s": literal}, rows, [v == literal for v in values])


def test_iso_dates_compare_as_strings() -> None:
    rows = [{"d": "2024-01-31"}, {"d": "2024-02-01"}, {"d": "2023-12-31T23:59:59Z"}]
    check({"d": {"$gte": "2024-01-01", "$lt": "2024-02-01"}}, rows, [True, False, False])


def test_mixed_types_in_one_field_across_rows() -> None:
    rows: list[dict[str, Any] | None] = [
        {"v": 1},
        {"v": 1.0},
        {"v": True},
        {"v": "1"},
        {"v": [1]},
        {"v": None},
        {},
    ]
    check({"v": 1}, rows, [True, True, False, False, False, False, False])
    check({"v": {"$gte": 1}}, rows, [True, True, False, False, False, False, False])
    check({"v": {"$ne": 1}}, rows, [False, False, True, True, True, True, True])
    check({"v": {"$contains": 1}}, rows, [False, False, False, False, True, False, False])
    check({"v": {"$in": [True, "1"]}}, rows, [False, False, True, True, False, False, False])


def test_arrays_of_objects_are_ignored_by_contains() -> None:
    rows: list[dict[str, Any] | None] = [{"a": [{"b": 1}, 2]}, {"a": ({"b": 1},)}]
    check({"a": {"$contains": 2}}, rows, [True, False])
    check({"a.b": 1}, rows, [False, False])
    check({"a": {"$exists": True}}, rows, [True, True])


def test_unsupported_metadata_types_count_as_present_but_never_equal() -> None:
    rows: list[dict[str, Any] | None] = [{"x": b"bytes"}, {"x": {1, 2}}, {"y": 1}]
    check({"x": {"$exists": True}}, rows, [True, True, False])
    check({"x": {"$ne": "bytes"}}, rows, [True, True, True])
    check({"x": None}, rows, [False, False, True])


def test_non_dict_metadata_and_non_string_keys_are_ignored() -> None:
    rows: list[Any] = [{1: "a", "k": 1}, "not a dict", None, {"k": 1}]
    check({"k": 1}, rows, [True, False, False, True])
    check({"k": {"$exists": False}}, rows, [False, True, True, False])


def test_many_paths_and_sparse_paths() -> None:
    rows: list[dict[str, Any] | None] = [
        {f"field{j}": (i * j) % 7 for j in range(20)} for i in range(300)
    ]
    for i in range(0, 300, 100):
        rows[i] = dict(rows[i] or {}, rare=i)
    check({"rare": {"$gte": 100}}, rows, [i in (100, 200) for i in range(300)])
    check(
        {"field3": 2, "field5": {"$in": [0, 1]}},
        rows,
        [(i * 3) % 7 == 2 and (i * 5) % 7 in (0, 1) for i in range(300)],
    )


def test_empty_columns_give_empty_masks() -> None:
    f = compile_filter({"a": {"$ne": 1}})
    assert f.mask(MetadataColumns()).shape == (0,)
    assert f.mask(MetadataColumns.build([])).shape == (0,)


def test_filter_properties() -> None:
    f = compile_filter({"a": 1, "$or": [{"b.c": 2}, {"$not": {"d": 3}}]})
    assert f.paths == frozenset({"a", "b.c", "d"})
    assert not f.matches_all
    assert compile_filter({}).matches_all


def test_metadata_nested_deeper_than_32_levels() -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(40):
        deep = {"k": deep}
    rows = [deep, {}]
    check({".".join(["k"] * 32): {"$exists": True}}, rows, [True, False])
    check({".".join(["k"] * 33): {"$exists": True}}, rows, [False, False])
    check({".".join(["k"] * 40 + ["leaf"]): 1}, rows, [False, False])
