"""Search results against brute force, across metrics, memtables, flat and HNSW segments."""

from __future__ import annotations

import numpy as np
import pytest

import keeldb


def brute_force(
    base: np.ndarray, q: np.ndarray, metric: str, k: int
) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        qq = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1.0 - qq @ b.T
    elif metric == "ip":
        d = -(q @ base.T)
    else:
        d = np.sqrt(((q[:, None, :] - base[None, :, :]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_units_match_brute_force(db_path: str, metric: str) -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(size=(700, 16)).astype(np.float32)
    queries = rng.normal(size=(25, 16)).astype(np.float32)
    # memtable_rows=200 -> several flat segments + a memtable; HNSW never kicks in.
    with keeldb.open(db_path, memtable_rows=200, hnsw_min_rows=10**6, background=False) as db:
        col = db.create_collection("c", dim=16, metric=metric)
        for i in range(0, 700, 100):
            col.upsert([str(j) for j in range(i, i + 100)], base[i : i + 100])
        kinds = {s.kind for s in col.stats().segments if s.rows}
        assert kinds == {"flat", "memtable"}
        want_d, want_i = brute_force(base, queries, metric, 10)
        got = col.search_batch(queries, k=10)
        for qi, hits in enumerate(got):
            assert [int(h.id) for h in hits] == want_i[qi].tolist()
            np.testing.assert_allclose([h.distance for h in hits], want_d[qi], rtol=1e-4, atol=1e-4)
        single = col.search(queries[0], k=10)
        assert [h.id for h in single] == [h.id for h in got[0]]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_hnsw_distances_are_exact_for_returned_ids(db_path: str, metric: str) -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(size=(600, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    with keeldb.open(db_path, memtable_rows=200, hnsw_min_rows=300) as db:
        col = db.create_collection("c", dim=16, metric=metric)
        col.upsert([str(j) for j in range(600)], base)
        col.compact()
        assert col.stats().index_type == "hnsw"
        all_d, _ = brute_force(base, queries, metric, 600)
        full = np.empty((20, 600))
        for qi in range(20):
            d, order = brute_force(base, queries[qi : qi + 1], metric, 600)
            full[qi, order[0]] = d[0]
        hits = col.search_batch(queries, k=10, ef=200)
        for qi, hs in enumerate(hits):
            assert len(hs) == 10
            assert [h.distance for h in hs] == sorted(h.distance for h in hs)
            for h in hs:
                assert abs(h.distance - full[qi, int(h.id)]) < 1e-3


def recall(hits: list[list[keeldb.Hit]], truth: np.ndarray) -> float:
    got = sum(
        len({int(h.id) for h in hs} & set(t.tolist())) for hs, t in zip(hits, truth, strict=True)
    )
    return got / truth.size


def test_recall_on_real_sample_before_and_after_reopen(db_path: str, sample: dict) -> None:
    base = sample["vectors"]
    queries = sample["queries"]
    meta = sample["meta"]
    truth = np.argsort(-(queries @ base.T), axis=1, kind="stable")[:, :10]
    with keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000) as db:
        col = db.create_collection("pypi", dim=384)
        for i in range(0, len(base), 500):
            col.upsert([str(j) for j in range(i, i + 500)], base[i : i + 500], meta[i : i + 500])
        col.compact()
        st = col.stats()
        assert st.index_type == "hnsw" and all(s.kind == "hnsw" for s in st.segments if s.rows)
        before = recall(col.search_batch(queries, k=10), truth)
        singles = [col.search(q, k=10) for q in queries[:50]]
        assert recall(singles, truth[:50]) >= 0.95
    assert before >= 0.95
    with keeldb.open(db_path) as db:
        col = db.get_collection("pypi")
        after = recall(col.search_batch(queries, k=10), truth)
    assert after >= 0.95
    assert abs(after - before) < 1e-9  # the same graph, read back


def test_search_sees_memtable_and_segments_together(db_path: str) -> None:
    rng = np.random.default_rng(3)
    base = rng.normal(size=(500, 8)).astype(np.float32)
    with keeldb.open(db_path, memtable_rows=200, hnsw_min_rows=250) as db:
        col = db.create_collection("c", dim=8, metric="l2")
        col.upsert([str(j) for j in range(450)], base[:450])
        col.compact()
        col.upsert([str(j) for j in range(450, 500)], base[450:])  # stays in the memtable
        for j in (0, 449, 450, 499):
            assert col.search(base[j], k=1, ef=100)[0].id == str(j)
        # replacing a record that lives in a segment: the new vector wins, no duplicate
        col.upsert(["0"], base[499:500] + 10)
        hits = col.search(base[499] + 10, k=2)
        assert hits[0].id == "0" and hits[1].id != "0"
        assert col.count() == 500


def test_search_stats_report_plans(db_path: str) -> None:
    rng = np.random.default_rng(4)
    with keeldb.open(db_path, memtable_rows=200, hnsw_min_rows=250) as db:
        col = db.create_collection("c", dim=8)
        col.upsert([str(j) for j in range(300)], rng.normal(size=(300, 8)))
        col.compact()
        col.upsert(["new"], rng.normal(size=(1, 8)))
        seen: list[keeldb.SearchStats] = []
        col.on_search(seen.append)
        col.search(rng.normal(size=8), k=3)
        plans = seen[0].plans
        assert plans["mem"] == "exact"
        assert [p for name, p in plans.items() if name.startswith("seg-")] == ["hnsw"]
        assert seen[0].nodes_visited > 0


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_single_query_validation_matches_batch_validation(metric: str) -> None:
    """validate_query has a scalar fast path for one query; it must give bit-identical
    vectors to the array path (so search and search_batch see the same query)."""
    from keeldb.engine.validation import validate_query, validate_vectors

    rng = np.random.default_rng(7)
    queries = (rng.normal(size=(50, 24)) * rng.uniform(1e-3, 1e3, size=(50, 1))).astype(np.float32)
    for q in queries:
        want = validate_vectors(q.reshape(1, -1), 1, 24, metric)
        for given in (q, q.tolist(), q.reshape(1, -1)):
            got = validate_query(given, 24, metric, single=True)
            assert got.dtype == np.float32 and got.shape == (1, 24)
            assert np.array_equal(got, want)
            assert not np.shares_memory(got, q)
        assert np.array_equal(validate_query(q.reshape(1, -1), 24, metric, single=False), want)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_single_search_agrees_with_batch_search(db_path: str, metric: str) -> None:
    rng = np.random.default_rng(7)
    base = rng.normal(size=(300, 24)).astype(np.float32)
    queries = rng.normal(size=(20, 24)).astype(np.float32)
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=24, metric=metric)
        col.upsert([f"r{i}" for i in range(300)], base, [{"i": i} for i in range(300)])
        batch = col.search_batch(queries, k=7)
        for qi, q in enumerate(queries):
            single = col.search(q, k=7)
            assert [h.id for h in single] == [h.id for h in batch[qi]]
            assert [h.metadata for h in single] == [h.metadata for h in batch[qi]]
            # one query and a batch take different BLAS kernels: rounding may differ
            np.testing.assert_allclose(
                [h.distance for h in single], [h.distance for h in batch[qi]], rtol=1e-5
            )


def test_hit_is_an_immutable_named_tuple(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=3, metric="l2")
        col.upsert(["a"], [[1.0, 0.0, 0.0]], [{"x": 1}])
        (hit,) = col.search([1.0, 0.0, 0.0], k=1)
        id_, distance, metadata, document, score = hit
        assert (id_, distance, metadata, document, score) == ("a", 0.0, {"x": 1}, None, None)
        assert hit._asdict() == {
            "id": "a",
            "distance": 0.0,
            "metadata": {"x": 1},
            "document": None,
            "score": None,
        }
        with pytest.raises(AttributeError):
            hit.id = "b"  # type: ignore[misc]
