"""Filtered search, count, delete and scan against a pure-Python model (exact search).

Random records spread over the memtable, flat segments and HNSW segments; random filters
from the whole language. The model evaluates filters with the reference evaluator
(``Filter.matches``, plain Python) and searches by brute force.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keeldb
from keeldb.filtering import compile_filter

DIM = 4
SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.sampled_from([0.5, 1.0, 2.5]),
    st.sampled_from(["a", "b", "c", "2024-01"]),
)
META = st.dictionaries(
    st.sampled_from(["x", "y", "tags", "nested"]),
    st.one_of(
        SCALAR,
        st.lists(st.sampled_from(["a", "b", 1, 2]), max_size=3),
        st.fixed_dictionaries({"z": SCALAR}),
    ),
    max_size=4,
)
FIELD = st.sampled_from(["x", "y", "tags", "nested.z", "missing"])
CMP_VALUE = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, 2.5]), st.sampled_from(["a", "b", "c"])
)


@st.composite
def conditions(draw: st.DrawFn, depth: int = 0) -> dict:
    kind = draw(st.integers(0, 9 if depth < 2 else 6))
    field = draw(FIELD)
    if kind == 0:
        return {field: draw(SCALAR)}
    if kind == 1:
        return {field: {draw(st.sampled_from(["$gt", "$gte", "$lt", "$lte"])): draw(CMP_VALUE)}}
    if kind == 2:
        return {field: {"$ne": draw(SCALAR)}}
    if kind == 3:
        return {field: {draw(st.sampled_from(["$in", "$nin"])): draw(st.lists(SCALAR, max_size=3))}}
    if kind == 4:
        return {field: {"$exists": draw(st.booleans())}}
    if kind == 5:
        return {field: {"$contains": draw(st.sampled_from(["a", "b", 1, 2]))}}
    if kind == 6:
        return {field: {"$eq": draw(SCALAR)}}
    if kind == 7:
        return {"$not": draw(conditions(depth + 1))}
    op = "$and" if kind == 8 else "$or"
    return {op: draw(st.lists(conditions(depth + 1), min_size=1, max_size=3))}


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    metas=st.lists(META, min_size=1, max_size=70),
    filters=st.lists(conditions(), min_size=1, max_size=4),
    k=st.integers(1, 8),
    seed=st.integers(0, 2**16),
)
def test_filtered_operations_match_model(
    tmp_path_factory, metas: list[dict], filters: list[dict], k: int, seed: int
) -> None:
    path = str(tmp_path_factory.mktemp("db"))
    rng = np.random.default_rng(seed)
    n = len(metas)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [f"r{i:03d}" for i in range(n)]
    query = rng.normal(size=DIM).astype(np.float32)
    query /= np.linalg.norm(query)
    with keeldb.open(path, memtable_rows=15, hnsw_min_rows=25, background=False) as db:
        col = db.create_collection("c", dim=DIM)
        for i in range(0, n, 10):
            col.upsert(ids[i : i + 10], vectors[i : i + 10], metas[i : i + 10])
        live = dict.fromkeys(range(n), True)
        for spec in filters:
            flt = compile_filter(spec)
            matching = [i for i in range(n) if live[i] and flt.matches(metas[i])]
            assert col.count(filter=spec) == len(matching), spec
            hits = col.search(query, k=k, filter=spec, ef=1024)
            dists = sorted((float(1 - vectors[i] @ query), ids[i]) for i in matching)[:k]
            assert len(hits) == len(dists), spec
            np.testing.assert_allclose([h.distance for h in hits], [d for d, _ in dists], atol=1e-5)
            assert all(flt.matches(h.metadata) for h in hits)
            # scan pages through exactly the matching records, in id order
            seen: list[str] = []
            cursor = None
            while True:
                page = col.scan(filter=spec, limit=7, cursor=cursor)
                seen.extend(r.id for r in page.records)
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert seen == sorted(ids[i] for i in matching), spec
        # delete by the last filter, then everything agrees again after a reopen
        spec = filters[-1]
        flt = compile_filter(spec)
        doomed = [i for i in range(n) if flt.matches(metas[i])]
        assert col.delete(filter=spec) == len(doomed)
        for i in doomed:
            live[i] = False
    with keeldb.open(path, background=False) as db:
        col = db.get_collection("c")
        assert col.count() == sum(live.values())
        assert col.count(filter=spec) == 0
        survivors = [ids[i] for i in range(n) if live[i]]
        got = [r.id if r else None for r in col.get(ids)]
        assert [g for g in got if g] == survivors
