"""The thread policy of faiss searches: one query never fans out, batches share the cores,
the caller's own OpenMP setting is a ceiling and is restored afterwards."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import faiss
import numpy as np
import pytest

import keeldb
from keeldb.index import threads
from keeldb.index.threads import search_threads, set_search_threads, thread_budget


@pytest.fixture(autouse=True)
def _default_policy() -> Iterator[None]:
    set_search_threads()
    yield
    set_search_threads()


def test_budget_from_numbers() -> None:
    cores = threads._CORES
    assert thread_budget(1, 1, ceiling=64) == 1
    assert thread_budget(100, 1, ceiling=64) == cores
    assert thread_budget(100, 2, ceiling=64) == max(1, cores // 2)
    assert thread_budget(100, cores + 5, ceiling=64) == 1
    assert thread_budget(100, 1, ceiling=1) == 1  # the caller's own limit is a ceiling
    assert thread_budget(3, 1, ceiling=64) == min(3, cores)  # never more than queries
    set_search_threads(per_query=2, per_batch=1)
    assert thread_budget(1, 1, ceiling=64) == 2
    assert thread_budget(100, 1, ceiling=64) == 1
    with pytest.raises(ValueError):
        set_search_threads(per_query=0)


def test_single_query_runs_on_one_thread_and_the_setting_is_restored() -> None:
    before = faiss.omp_get_max_threads()
    with search_threads(1) as n:
        assert n == 1 and faiss.omp_get_max_threads() == 1
    assert faiss.omp_get_max_threads() == before


def test_concurrent_batches_share_the_cores() -> None:
    seen: list[int] = []
    inside = threading.Barrier(2)

    def batch() -> None:
        with search_threads(1000):
            inside.wait(timeout=10)
            seen.append(faiss.omp_get_max_threads())
            inside.wait(timeout=10)

    workers = [threading.Thread(target=batch) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    # The first batch took every core; the second, arriving while it ran, its share: the
    # total stays within one thread per core plus one per further caller (a running
    # OpenMP region cannot shrink), not cores times callers.
    assert sorted(seen) == sorted([threads._CORES, max(1, threads._CORES // 2)])
    assert threads._active_batches == 0


def test_a_single_filtered_compact_search_never_fans_out(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    if faiss.omp_get_max_threads() < 2:
        pytest.skip("one OpenMP thread here: nothing could fan out")
    calls: list[int] = []
    real = faiss.omp_set_num_threads

    def record(n: int) -> None:
        calls.append(n)
        real(n)

    monkeypatch.setattr(faiss, "omp_set_num_threads", record)
    rng = np.random.default_rng(0)
    with keeldb.open(f"{tmp_path}/db", hnsw_min_rows=500, memtable_rows=500) as db:
        col = db.create_collection("c", dim=16)
        col.upsert(
            [str(i) for i in range(3000)],
            rng.standard_normal((3000, 16)).astype(np.float32),
            [{"g": i % 4} for i in range(3000)],
        )
        col.compact()
        plans: list[str] = []
        col.on_search(lambda s: plans.extend(s.plans.values()))
        for _ in range(6):  # a filter in repeated use gets its compact copy
            col.search(rng.standard_normal(16), k=5, filter={"g": 1})
        col.search(rng.standard_normal(16), k=5)
    assert any(p.startswith(("compact", "hnsw")) for p in plans), plans
    assert calls and all(n == 1 or n == faiss.omp_get_max_threads() for n in calls)
    assert 1 in calls


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_a_single_exact_scan_runs_on_the_calling_thread(
    metric: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One query over every row is faiss's scan on the calling thread (one OpenMP
    # thread), never numpy's matrix product (every OpenBLAS thread); it finds what the
    # matrix product finds, dead rows excluded. With more threads per query allowed,
    # the matrix product runs.
    from keeldb.index import exact
    from keeldb.index.base import Allowed

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((2000, 24)).astype(np.float32)
    query = rng.standard_normal((1, 24)).astype(np.float32)
    if metric == "cosine":  # the engine normalises both sides
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        query /= np.linalg.norm(query)
    dead = np.zeros(2000, dtype=bool)
    dead[rng.choice(2000, 300, replace=False)] = True
    norms = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None
    index = exact.ExactIndex(vectors, metric, norms)
    live = Allowed.live(dead, int(dead.sum()))
    want = exact.exact_search(vectors, query, 10, metric, exclude=dead, sq_norms=norms)
    want_all = exact.exact_search(vectors, query, 3, metric, sq_norms=norms)
    set_search_threads(per_query=2)
    assert index.search(query, 10, 0, live)[1].tolist() == want[1].tolist()
    set_search_threads()

    def no_matrix_product(*args: object) -> None:
        raise AssertionError("a single query took the matrix product")

    monkeypatch.setattr(exact, "_exact_block", no_matrix_product)
    got = index.search(query, 10, 0, live)
    assert got[1].tolist() == want[1].tolist()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
    assert not dead[got[1][0]].any()
    assert index.search(query, 3, 0, None)[1].tolist() == want_all[1].tolist()
    # k above the rows: one slot per row, the dead ones empty (-1, inf)
    gone = np.array([False, True, False, True, False])
    few = exact.ExactIndex(vectors[:5], metric, None if norms is None else norms[:5])
    got5 = few.search(query, 10, 0, Allowed.live(gone, 2))
    assert sorted(got5[1][0].tolist()) == [-1, -1, 0, 2, 4]
    assert np.isinf(got5[0][0][got5[1][0] < 0]).all()
