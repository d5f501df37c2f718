"""Malformed filters raise InvalidArgumentError naming the path of the bad part."""

from __future__ import annotations

import math
from typing import Any

import pytest

from keeldb.errors import InvalidArgumentError
from keeldb.filtering import (
    MAX_FILTER_DEPTH,
    MAX_FILTER_NODES,
    MAX_IN_VALUES,
    compile_filter,
)

REJECTED: list[tuple[Any, str, str]] = [
    # (filter, message prefix (the path), a fragment of the reason)
    (None, "filter: ", "must be an object"),
    ([{"a": 1}], "filter: ", "must be an object"),
    ("a = 1", "filter: ", "must be an object"),
    ({"a": {"$regex": "x"}}, "filter.a.$regex: ", "unknown operator"),
    ({"$nor": [{"a": 1}]}, "filter.$nor: ", "unknown operator"),
    ({"$gt": 1}, "filter.$gt: ", "must be applied to a field"),
    ({"a": {"$and": [{"b": 1}]}}, "filter.a.$and: ", "cannot be used inside a field"),
    ({"a": {"$in": 3}}, "filter.a.$in: ", "needs a list"),
    ({"a": {"$nin": "abc"}}, "filter.a.$nin: ", "needs a list"),
    ({"a": {"$in": [1, [2]]}}, "filter.a.$in[1]: ", "scalar"),
    ({"a": {"$in": [1, {"b": 2}]}}, "filter.a.$in[1]: ", "object values"),
    ({"$and": [{"a": 1}, {"year": {"$gt": True}}]}, "filter.$and[1].year.$gt: ", "got bool"),
    ({"year": {"$lte": None}}, "filter.year.$lte: ", "got null"),
    ({"year": {"$lt": [1]}}, "filter.year.$lt: ", "scalar"),
    ({"a": {"$exists": 1}}, "filter.a.$exists: ", "true or false"),
    ({"a": {"$contains": None}}, "filter.a.$contains: ", "non-null"),
    ({"a": {"$contains": [1]}}, "filter.a.$contains: ", "scalar"),
    ({1: "a"}, "filter: ", "keys must be strings"),
    ({"a": {1: 2}}, "filter.a: ", "keys must be strings"),
    ({"$and": []}, "filter.$and: ", "empty list"),
    ({"$or": []}, "filter.$or: ", "empty list"),
    ({"$or": {"a": 1}}, "filter.$or: ", "non-empty list"),
    ({"$and": [1]}, "filter.$and[0]: ", "must be an object"),
    ({"$not": [{"a": 1}]}, "filter.$not: ", "must be an object"),
    ({"$not": "a"}, "filter.$not: ", "must be an object"),
    ({"a": {"$not": 5}}, "filter.a.$not: ", "operator object"),
    ({"a": {"$not": {"b": 1}}}, "filter.a.$not: ", "object values"),
    ({"a": {"$gt": 1, "b": 2}}, "filter.a: ", "cannot mix operators"),
    ({"a": {"b": 1}}, "filter.a: ", "a.b"),
    ({"a": {}}, "filter.a: ", "empty object"),
    ({"a": [1, 2]}, "filter.a: ", "does not compare arrays"),
    ({"a": {"$ne": [1]}}, "filter.a.$ne: ", "does not compare arrays"),
    ({"a": math.nan}, "filter.a: ", "finite"),
    ({"a": {"$gt": math.inf}}, "filter.a.$gt: ", "finite"),
    ({"a": {"$in": [1, -math.inf]}}, "filter.a.$in[1]: ", "finite"),
    ({"a": 2**63}, "filter.a: ", "64-bit"),
    ({"a": {"$lt": -(2**63) - 1}}, "filter.a.$lt: ", "64-bit"),
    ({"a": b"bytes"}, "filter.a: ", "unsupported value type bytes"),
    ({"a": {"$eq": object()}}, "filter.a.$eq: ", "unsupported value type"),
    ({"": 1}, "filter.: ", "must not be empty"),
    ({"a..b": 1}, "filter.a..b: ", "empty segment"),
    ({".a": 1}, "filter..a: ", "empty segment"),
    ({"$or": [{"a": 1}, {"$and": [{"b": {"$in": {}}}]}]}, "filter.$or[1].$and[0].b.$in: ", ""),
]


@pytest.mark.parametrize(("spec", "prefix", "reason"), REJECTED, ids=[repr(r[0]) for r in REJECTED])
def test_malformed_filter_is_rejected_with_its_path(spec: Any, prefix: str, reason: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        compile_filter(spec)
    message = str(info.value)
    assert message.startswith(prefix), message
    assert reason in message
    assert info.value.code == "invalid_argument"


def _nested_not(levels: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        spec = {"$not": spec}
    return spec


def test_depth_limit() -> None:
    compile_filter(_nested_not(MAX_FILTER_DEPTH - 1))
    with pytest.raises(InvalidArgumentError, match="deeper than 32"):
        compile_filter(_nested_not(MAX_FILTER_DEPTH))
    # Far deeper than the interpreter's recursion limit: still a clean error.
    with pytest.raises(InvalidArgumentError, match=r"^filter(\.\$not)+: .*deeper"):
        compile_filter(_nested_not(100_000))


def test_self_referencing_filter_is_rejected_not_looped() -> None:
    spec: dict[str, Any] = {}
    spec["$not"] = spec
    with pytest.raises(InvalidArgumentError, match="deeper"):
        compile_filter(spec)


def test_node_limit() -> None:
    compile_filter({f"f{i}": i for i in range(MAX_FILTER_NODES)})
    with pytest.raises(InvalidArgumentError, match=r"^filter: .*more than 1000 nodes"):
        compile_filter({f"f{i}": i for i in range(MAX_FILTER_NODES + 1)})
    wide_or = {"$or": [{"a": i} for i in range(MAX_FILTER_NODES)]}
    with pytest.raises(InvalidArgumentError, match=r"^filter\.\$or\[\d+\]: .*nodes"):
        compile_filter(wide_or)


def test_in_values_limit() -> None:
    compile_filter({"a": {"$in": list(range(MAX_IN_VALUES))}})
    with pytest.raises(InvalidArgumentError, match=r"^filter\.b\.\$nin: .*10000 values"):
        compile_filter({"a": {"$in": [1] * (MAX_IN_VALUES - 1)}, "b": {"$nin": [1, 2]}})


def test_valid_forms_are_accepted() -> None:
    for spec in [
        {},
        {"a": None},
        {"a": -(2**63)},
        {"a": 2**63 - 1},
        {"a": {"$gte": 1, "$lt": 2.5}},
        {"a": {"$in": (1, "x", None, True)}},
        {"a": {"$not": {"$in": []}}},
        {"$and": [{}], "x": "y", "$or": [{"b": 1}], "$not": {"c": {"$exists": False}}},
        {"a.b.c": {"$contains": "é"}},
        {"weird key with spaces": 1, "a.$b": 2},
    ]:
        compile_filter(spec)


def test_compiled_filter_does_not_keep_the_spec() -> None:
    spec: dict[str, Any] = {"a": {"$in": [1, 2]}}
    f = compile_filter(spec)
    spec["a"]["$in"].append(3)
    assert not f.matches({"a": 3})
