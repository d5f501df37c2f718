"""Compiled filters are kept for reuse (issue 16: compiling cost 20-150 us per call),
without ever letting two different specs share a compiled filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

import keeldb
from keeldb.engine import filter_cache
from keeldb.engine.filter_cache import compile_keyed
from keeldb.errors import InvalidArgumentError


def test_the_same_spec_is_compiled_once() -> None:
    spec = {"$and": [{"year": {"$gte": 2019, "$lt": 2024}}, {"lang": {"$ne": "en"}}]}
    first = compile_keyed(spec)
    again = compile_keyed(
        {"$and": [{"year": {"$gte": 2019, "$lt": 2024}}, {"lang": {"$ne": "en"}}]}
    )
    assert again is first
    # key order does not matter (all keys of an object are ANDed)
    assert compile_keyed({"b": 1, "a": 2}) is compile_keyed({"a": 2, "b": 1})


def test_numbers_bools_and_nulls_stay_distinct() -> None:
    keys = {compile_keyed({"x": v}).key for v in (1, 1.0, True, None, "1")}
    assert len(keys) == 5
    assert compile_keyed({"x": 1}).matches({"x": 1})
    assert not compile_keyed({"x": True}).matches({"x": 1})


def test_nan_is_rejected_even_after_the_null_spec_was_cached() -> None:
    # orjson writes NaN as null: a NaN spec must not be answered from {"x": null}'s entry
    compile_keyed({"x": None})
    for bad in (math.nan, math.inf):
        with pytest.raises(InvalidArgumentError):
            compile_keyed({"x": bad})


def test_malformed_specs_raise_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidArgumentError):
            compile_keyed({"x": {"$regex": "a"}})
        with pytest.raises(InvalidArgumentError):
            compile_keyed({1: 2})


def test_foreign_types_are_compiled_afresh_not_cached() -> None:
    listed = compile_keyed({"x": {"$in": [1, 2]}})
    try:
        tupled = compile_keyed({"x": {"$in": (1, 2)}})
    except InvalidArgumentError:
        return  # tuples refused outright: nothing shared either
    assert tupled is not listed


def test_the_cache_is_bounded() -> None:
    for i in range(filter_cache.COMPILED_CACHE_ENTRIES + 50):
        compile_keyed({"n": i})
    assert len(filter_cache._compiled) <= filter_cache.COMPILED_CACHE_ENTRIES


def test_search_results_are_unchanged_by_reuse(tmp_path: object) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 8)).astype(np.float32)
    with keeldb.open(str(tmp_path)) as db:
        col = db.create_collection("c", dim=8)
        col.upsert([str(i) for i in range(300)], vecs, [{"g": i % 3} for i in range(300)])
        spec = {"g": {"$ne": 1}}
        a = col.search(vecs[0], k=20, filter=spec)
        b = col.search(vecs[0], k=20, filter={"g": {"$ne": 1}})
        assert [h.id for h in a] == [h.id for h in b]
        assert all(h.metadata["g"] != 1 for h in b)


@pytest.mark.parametrize(
    "spec",
    [{"x": 2**64}, {"x": -(2**63) - 1}, {"x": {"$in": [1, 2**70]}}, {"x": {"$gt": 2**63}}],
)
def test_integers_past_64_bits_are_invalid_arguments(spec: object) -> None:
    """The cache key (canonical JSON) cannot hold them; the filter's own validation must
    answer (found by the server's schemathesis run: a TypeError, HTTP 500)."""
    with pytest.raises(InvalidArgumentError, match="64-bit"):
        compile_keyed(spec)
