"""Property tests: the vectorised mask equals the reference evaluator on random rows and
random filters, however the columns were made (build, appends, payload round trip), and
``from_bytes`` survives arbitrary damage (ValueError or a usable result, never a crash)."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keeldb.filtering import MetadataColumns, compile_filter

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Small pools so that rows and filters collide often; edge values included on purpose.
INTS = st.sampled_from(
    [0, 1, 2, 3, -1, 2**53, 2**53 + 1, 2**53 + 3, -(2**53) - 1, 2**63 - 1, -(2**63), 10**6]
)
HUGE_INTS = st.sampled_from([2**64 + 1, -(2**70), 10**400])  # metadata only
FLOATS = st.sampled_from(
    [0.0, -0.0, 0.5, 1.0, 2.5, -1.5, 2.0**53, 2.0**53 + 2, 2.0**53 + 4, -(2.0**53)]
    + [2.0**63, -(2.0**63), 9.3e18, -9.3e18, 1e300]
)
NONFINITE = st.sampled_from([math.nan, math.inf, -math.inf])  # metadata only
STRS = st.sampled_from(["", "a", "b", "a\x00", "ab", "é", "中", "𝔸", "\ud800", "1", "2024-01"])
BOOLS = st.booleans()
LITERALS = st.one_of(INTS, FLOATS, STRS, BOOLS, st.none())
KEYS = st.sampled_from(["a", "b", "a", "b", "c", "a.b"])
PATHS = st.sampled_from(["a", "b", "a", "b", "c", "a.b", "a.c", "b.a", "a.b.c", "zz"])

ROW_SCALARS = st.one_of(INTS, FLOATS, STRS, BOOLS, st.none(), HUGE_INTS, NONFINITE)
ARRAYS = st.lists(ROW_SCALARS | st.dictionaries(KEYS, ROW_SCALARS, max_size=1), max_size=4)
LEAF_VALUES = st.one_of(ROW_SCALARS, ROW_SCALARS, ROW_SCALARS, ARRAYS)
ROW_VALUES = st.one_of(
    LEAF_VALUES,
    LEAF_VALUES,
    LEAF_VALUES,
    st.dictionaries(KEYS, LEAF_VALUES | st.dictionaries(KEYS, LEAF_VALUES, max_size=2), max_size=3),
)
ROWS = st.lists(
    st.none() | st.dictionaries(KEYS, ROW_VALUES, min_size=1, max_size=4), min_size=1, max_size=40
)


def _field_condition(path: str, op: str, draw: Any) -> dict[str, Any]:
    if op in ("$gt", "$gte", "$lt", "$lte"):
        arg = draw(st.one_of(INTS, FLOATS, STRS))
    elif op in ("$in", "$nin"):
        arg = draw(st.lists(LITERALS, max_size=4))
    elif op == "$exists":
        arg = draw(BOOLS)
    elif op == "$contains":
        arg = draw(st.one_of(INTS, FLOATS, STRS, BOOLS))
    else:
        arg = draw(LITERALS)
    return {path: arg} if op == "implicit" else {path: {op: arg}}


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    op = draw(
        st.sampled_from(
            [
                "implicit",
                "$eq",
                "$ne",
                "$gt",
                "$gte",
                "$lt",
                "$lte",
                "$in",
                "$nin",
                "$exists",
                "$contains",
            ]
        )
    )
    cond = _field_condition(draw(PATHS), op, draw)
    if draw(st.integers(0, 9)) == 0:  # field-level $not
        path, inner = next(iter(cond.items()))
        if isinstance(inner, dict):
            return {path: {"$not": inner}}
    return cond


COMPOUND = st.recursive(
    conditions(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$and": fs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda fs: {"$or": fs}),
        inner.map(lambda f: {"$not": f}),
        st.lists(inner, max_size=3).map(
            lambda fs: {k: v for f in fs for k, v in f.items()}  # implicit AND
        ),
    ),
    max_leaves=6,
)
# Single conditions dominate: a random AND of several conditions is nearly always empty.
FILTERS = st.one_of(conditions(), conditions(), COMPOUND)


def _reference(spec: dict[str, Any], rows: list[Any]) -> list[bool]:
    f = compile_filter(spec)
    return [f.matches(row) for row in rows]


@SETTINGS
@given(rows=ROWS, specs=st.lists(FILTERS, min_size=1, max_size=4), seed=st.integers(0, 2**16))
def test_mask_equals_reference(rows: list[Any], specs: list[dict[str, Any]], seed: int) -> None:
    built = MetadataColumns.build(rows)
    appended = MetadataColumns()
    cuts = sorted(random.Random(seed).sample(range(len(rows) + 1), k=min(3, len(rows) + 1)))
    for start, end in zip([0, *cuts], [*cuts, len(rows)], strict=True):
        appended.append(rows[start:end])
    round_tripped = MetadataColumns.from_bytes(built.to_bytes())
    # Loaded, then grown again: exercises copy-on-append and the lazy string dictionary.
    half = len(rows) // 2
    reloaded = MetadataColumns.from_bytes(MetadataColumns.build(rows[:half]).to_bytes())
    reloaded.append(rows[half:])
    assert appended.to_bytes() == built.to_bytes() == reloaded.to_bytes()
    for spec in specs:
        f = compile_filter(spec)
        expected = [f.matches(row) for row in rows]
        for columns in (built, appended, round_tripped, reloaded):
            mask = f.mask(columns)
            assert mask.dtype == np.bool_
            assert mask.tolist() == expected, (spec, columns)


GRID_SCALARS: list[Any] = [
    0, 1, 2, 3, -1, 2**53, 2**53 + 1, 2**53 + 3, -(2**53) - 1, 2**63 - 1, -(2**63), 10**6,
    2**64 + 1, -(2**70), 10**400,
    0.0, -0.0, 0.5, 1.0, 2.5, -1.5, 2.0**53, 2.0**53 + 2, 2.0**53 + 4, -(2.0**53),
    2.0**63, -(2.0**63), 9.3e18, -9.3e18, 1e300, math.nan, math.inf, -math.inf,
    "", "a", "b", "a\x00", "ab", "é", "中", "𝔸", "\ud800", "1", "2024-01",
    True, False, None,
]  # fmt: skip
GRID_LITERALS = [
    v
    for v in GRID_SCALARS
    if not (isinstance(v, float) and not math.isfinite(v))
    and not (isinstance(v, int) and abs(v) > 2**63)
]


def _grid_specs() -> list[dict[str, Any]]:
    specs: list[dict[str, Any]] = [{"x": {"$exists": b}} for b in (True, False)]
    for v in GRID_LITERALS:
        specs += [{"x": v}, {"x": {"$ne": v}}, {"x": {"$in": [v]}}, {"x": {"$nin": [v, 2]}}]
        if v is not None:
            specs.append({"x": {"$contains": v}})
        if v is not None and not isinstance(v, bool):
            specs += [{"x": {op: v}} for op in ("$gt", "$gte", "$lt", "$lte")]
    specs.append({"x": {"$in": GRID_LITERALS}})
    specs.append({"x": {"$in": [True, False]}})
    return specs


def test_every_operator_and_literal_against_every_value() -> None:
    # Deterministic and exhaustive over the pools: each literal against each stored value,
    # with values mixed in one column (sparse parts), alone per kind (dense parts), and in
    # arrays (element parts with repeated rows).
    mixed: list[Any] = [{"x": v} for v in GRID_SCALARS] + [{}, None, {"x": {"y": 1}}]
    arrays: list[Any] = [{"x": GRID_SCALARS[i : i + 4]} for i in range(len(GRID_SCALARS))]
    arrays += [{"x": []}, {}, {"x": [[1], {"a": 2}, None]}]
    layouts = [mixed, arrays, mixed + arrays, [{"x": [True]}, {"x": [False]}]]
    for kind in (int, float, str, bool):
        same_kind = [v for v in GRID_SCALARS if type(v) is kind]
        layouts.append([{"x": v} for v in same_kind])
        # As many elements as rows, all in row 0: an element part is never "dense".
        layouts.append([{"x": same_kind[:2]}, {"y": 1}])
    specs = [compile_filter(spec) for spec in _grid_specs()]
    for rows in layouts:
        variants = [MetadataColumns.build(rows)]
        variants.append(MetadataColumns.from_bytes(variants[0].to_bytes()))
        for f in specs:
            expected = [f.matches(row) for row in rows]
            for columns in variants:
                assert f.mask(columns).tolist() == expected, (f, rows)


@SETTINGS
@given(rows=ROWS, spec=FILTERS)
def test_not_is_the_complement(rows: list[Any], spec: dict[str, Any]) -> None:
    columns = MetadataColumns.build(rows)
    positive = compile_filter(spec).mask(columns)
    negative = compile_filter({"$not": spec}).mask(columns)
    assert not np.any(positive & negative) and np.all(positive | negative)


def _probe(path: str) -> dict[str, Any]:
    """One filter touching every kind of part at ``path``."""
    return {
        "$or": [
            {path: 1},
            {path: "a"},
            {path: True},
            {path: None},
            {path: {"$gt": 0.5}},
            {path: {"$lte": "b"}},
            {path: {"$in": [1, 2.5, "a", False, None]}},
            {path: {"$contains": "a"}},
            {path: {"$contains": 2}},
            {path: {"$contains": False}},
            {path: {"$exists": True}},
        ]
    }


PROBES = {path: compile_filter(_probe(path)) for path in ("a", "b", "c", "d", "d.e", "f")}


def _try_decode(payload: bytes) -> None:
    """A payload either raises ValueError or decodes to columns that every operation
    works on (masks of the right shape, re-encoding, memory estimate)."""
    try:
        columns = MetadataColumns.from_bytes(payload)
    except ValueError:
        return
    n = len(columns)
    # A damaged row count may legitimately claim billions of rows (a tiny payload can
    # describe a huge segment without metadata); masks then cost n bytes, so skip them.
    for path in columns.paths()[:8] if n <= 100_000 else []:
        f = PROBES.get(path) or compile_filter(_probe(path))
        mask = f.mask(columns)
        assert mask.shape == (n,) and mask.dtype == np.bool_
    assert len(MetadataColumns.from_bytes(columns.to_bytes())) == n
    assert columns.nbytes >= 0


SAMPLE_ROWS: list[Any] = [
    {"a": 1, "b": "x", "c": [1, "é", True, 2.5], "d": {"e": None}},
    {"a": 2.5, "b": "yz", "c": [], "f": False},
    None,
    {"a": "s", "b": "x", "c": ["x", "x"]},
]
SAMPLE = MetadataColumns.build(SAMPLE_ROWS).to_bytes()


@settings(max_examples=300, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255)), min_size=1, max_size=6
    ),
    cut=st.one_of(st.none(), st.integers(0, len(SAMPLE))),
    tail=st.binary(max_size=16),
)
def test_mutated_payload_raises_value_error_or_decodes(
    edits: list[tuple[int, int]], cut: int | None, tail: bytes
) -> None:
    payload = bytearray(SAMPLE)
    for position, byte in edits:
        payload[position] = byte
    if cut is not None:
        del payload[cut:]
    payload += tail
    _try_decode(bytes(payload))


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), rows=st.integers(0, 2**33), columns=st.integers(0, 4))
def test_random_bytes_raise_value_error_or_decode(body: bytes, rows: int, columns: int) -> None:
    _try_decode(body)
    header = b"KEELFLT\x00" + (1).to_bytes(4, "little") + columns.to_bytes(4, "little")
    _try_decode(header + rows.to_bytes(8, "little") + body)


def test_every_single_byte_flip_of_a_payload() -> None:
    # Exhaustive over positions: each byte of a real payload replaced by two values.
    for position in range(len(SAMPLE)):
        for value in (0x00, 0xFF, SAMPLE[position] ^ 0x01):
            damaged = bytearray(SAMPLE)
            damaged[position] = value
            _try_decode(bytes(damaged))
