"""Concurrency: threads searching, scanning and counting while others upsert, delete and
compact (background maintenance on).

Checks: no exceptions; every hit's id existed at some point during its search (ids are
written once, so "existed" is: its upsert began before the search ended, and it was not
deleted before the search began); ``count()`` never goes backwards while nothing is
deleted; and searches do not wait for compaction (latencies measured and reported).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import keeldb

DIM = 16
OPTS = {"memtable_rows": 200, "hnsw_min_rows": 400}


class Ledger:
    """When each id's upsert began and its delete was acknowledged (monotonic clock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.began: dict[str, float] = {}
        self.deleted: dict[str, float] = {}

    def check_hit(self, id_: str, start: float, end: float) -> str | None:
        with self.lock:
            began = self.began.get(id_)
            gone = self.deleted.get(id_)
        if began is None or began > end:
            return f"{id_} returned before it was written"
        if gone is not None and gone < start:
            return f"{id_} returned after its delete was acknowledged"
        return None


def _run(db_path: Path, seconds: float, *, deletes: bool) -> dict[str, object]:
    db = keeldb.open(db_path, **OPTS)
    col = db.create_collection("c", DIM, "cosine")
    ledger = Ledger()
    stop = threading.Event()
    errors: list[BaseException] = []
    problems: list[str] = []
    latencies: list[tuple[float, bool]] = []  # (seconds, during a compaction)
    compacting = threading.Event()
    counts_seen: list[int] = []
    next_id = iter(range(10**9))
    id_lock = threading.Lock()

    def guard(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        return run

    @guard
    def writer() -> None:
        rng = np.random.default_rng(threading.get_ident() % 2**32)
        mine: list[str] = []
        while not stop.is_set():
            with id_lock:
                ids = [f"id{next(next_id):08d}" for _ in range(int(rng.integers(1, 40)))]
            now = time.monotonic()
            with ledger.lock:
                for i in ids:
                    ledger.began[i] = now
            col.upsert(
                ids, rng.normal(size=(len(ids), DIM)), [{"w": 1, "n": i} for i in range(len(ids))]
            )
            mine.extend(ids)
            if deletes and len(mine) > 50 and rng.random() < 0.3:
                victims = [mine.pop(int(rng.integers(len(mine)))) for _ in range(5)]
                col.delete(victims)
                now = time.monotonic()
                with ledger.lock:
                    for v in victims:
                        ledger.deleted[v] = now

    @guard
    def compactor() -> None:
        while not stop.is_set():
            time.sleep(0.2)
            compacting.set()
            try:
                col.compact()
            finally:
                compacting.clear()

    @guard
    def reader() -> None:
        rng = np.random.default_rng(7)
        last_count = 0
        while not stop.is_set():
            q = rng.normal(size=DIM).astype(np.float32)
            during = compacting.is_set()
            t0 = time.monotonic()
            hits = col.search(q, k=10)
            t1 = time.monotonic()
            latencies.append((t1 - t0, during or compacting.is_set()))
            for h in hits:
                why = ledger.check_hit(h.id, t0, t1)
                if why:
                    problems.append(why)
            if rng.random() < 0.1:
                t0 = time.monotonic()
                page = col.scan(limit=50)
                t1 = time.monotonic()
                for r in page.records:
                    why = ledger.check_hit(r.id, t0, t1)
                    if why:
                        problems.append(f"scan: {why}")
            c = col.count()
            counts_seen.append(c)
            if not deletes and c < last_count:
                problems.append(f"count went backwards without deletes: {last_count} -> {c}")
            last_count = c

    threads = [threading.Thread(target=t) for t in (writer, writer, compactor, reader, reader)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    final = col.count()
    db.close()
    if errors:
        raise errors[0]
    busy = sorted(s for s, d in latencies if d)
    idle = sorted(s for s, d in latencies if not d)
    return {
        "problems": problems,
        "searches": len(latencies),
        "searches_during_compaction": len(busy),
        "max_ms_during_compaction": 1000 * busy[-1] if busy else None,
        "p99_ms_during_compaction": 1000 * busy[int(0.99 * (len(busy) - 1))] if busy else None,
        "p50_ms_during_compaction": 1000 * busy[len(busy) // 2] if busy else None,
        "p50_ms_idle": 1000 * idle[len(idle) // 2] if idle else None,
        "max_ms_idle": 1000 * idle[-1] if idle else None,
        "final_count": final,
    }


@pytest.mark.parametrize("deletes", [False, True])
def test_readers_never_see_impossible_states(fast_tmp: Path, deletes: bool) -> None:
    res = _run(fast_tmp / "db", seconds=6.0, deletes=deletes)
    print(f"\n[concurrency] deletes={deletes}: {res}")
    assert res["problems"] == [], res["problems"][:5]  # type: ignore[index]
    assert int(res["searches_during_compaction"]) > 20  # type: ignore[call-overload]
    # Latency during compaction is reported, not asserted (performance belongs in
    # benchmarks): with writers no longer throttled by compactions, five busy threads and
    # faiss's build threads share two cores, and the median search rose from ~0.5 ms to
    # ~8 ms here. That searches never wait on a compaction's locks is asserted directly in
    # tests/engine/test_backpressure.py.


def test_search_latency_while_compacting(fast_tmp: Path) -> None:
    """One reader, one compaction at a time (seal + HNSW merge of 2,000 new rows into
    8,000), no other writers: how long does a search take while the compaction runs?"""
    db = keeldb.open(fast_tmp / "db", memtable_rows=100_000, hnsw_min_rows=1000)
    col = db.create_collection("c", DIM, "cosine", ef_construction=100)
    rng = np.random.default_rng(0)
    col.upsert([f"a{i}" for i in range(8000)], rng.normal(size=(8000, DIM)))
    col.compact()
    idle: list[float] = []
    busy: list[float] = []
    compacting = threading.Event()
    done = threading.Event()
    durations: list[float] = []

    def compactor() -> None:
        try:
            for r in range(3):
                col.upsert([f"b{r}-{i}" for i in range(2000)], rng.normal(size=(2000, DIM)))
                time.sleep(0.3)
                compacting.set()
                t0 = time.monotonic()
                col.compact()
                durations.append(time.monotonic() - t0)
                compacting.clear()
        finally:
            done.set()  # a failed compaction ends the readers' loop too (and fails below)

    t = threading.Thread(target=compactor)
    t.start()
    q = np.random.default_rng(1).normal(size=(64, DIM)).astype(np.float32)
    i = 0
    while not done.is_set():
        during = compacting.is_set()
        t0 = time.monotonic()
        col.search(q[i % 64], k=10)
        dt = time.monotonic() - t0
        (busy if during and compacting.is_set() else idle).append(dt)
        i += 1
    t.join()
    db.close()
    assert len(durations) == 3, "a compaction failed (see the thread's traceback)"
    busy.sort()
    idle.sort()
    res = {
        "compaction_s": [round(d, 3) for d in durations],
        "searches_during": len(busy),
        "p50_ms_during": round(1000 * busy[len(busy) // 2], 3),
        "p99_ms_during": round(1000 * busy[int(0.99 * (len(busy) - 1))], 3),
        "max_ms_during": round(1000 * busy[-1], 3),
        "p50_ms_idle": round(1000 * idle[len(idle) // 2], 3),
        "max_ms_idle": round(1000 * idle[-1], 3),
    }
    print(f"\n[search during compaction] {res}")
    # Searches keep completing while compactions run (thousands of them during compactions
    # of hundreds of ms each), at the idle median. The latency tail is reported here and in
    # docs/reliability.md, not asserted: a timed bound on the slowest search fails on a
    # loaded 2-core machine for reasons unrelated to KeelDB (seen: 160 ms with another
    # test suite running), and performance targets belong in benchmarks.
    assert len(busy) > 50, res
    assert res["p50_ms_during"] < 10 * max(res["p50_ms_idle"], 1.0), res


@pytest.mark.slow
def test_readers_long_run(tmp_path: Path) -> None:
    res = _run(tmp_path / "db", seconds=120.0, deletes=True)
    print(f"\n[concurrency long] {res}")
    assert res["problems"] == []
