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
