"""Writes wait for the seal backlog, and give up with BusyError after write_timeout_s."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import keeldb


def test_write_raises_busy_when_sealing_is_stalled(db_path: str) -> None:
    with keeldb.open(db_path, memtable_rows=10, max_frozen_memtables=1, write_timeout_s=0.3) as db:
        col = db.create_collection("c", dim=4)
        maintainer = col._maintainer
        assert maintainer is not None
        rng = np.random.default_rng(0)
        with maintainer.merge_lock, maintainer.lock:  # a long compaction holds both
            with pytest.raises(keeldb.BusyError):
                for i in range(20):
                    col.upsert([f"{i}-{j}" for j in range(10)], rng.normal(size=(10, 4)))
            # Searches are not blocked by the stalled maintenance (a blocked one would
            # wait for as long as the locks are held: for ever here).
            searcher = threading.Thread(target=col.search, args=(rng.normal(size=4), 3))
            searcher.start()
            searcher.join(30)
            assert not searcher.is_alive(), "a search waited for stalled maintenance"
            acknowledged = col.count()
        # Once maintenance resumes, writes go through again and nothing acknowledged is lost.
        col.upsert(["after"], rng.normal(size=(1, 4)))
        assert col.count() == acknowledged + 1


def test_write_waits_for_backlog_instead_of_failing(db_path: str) -> None:
    with keeldb.open(db_path, memtable_rows=10, max_frozen_memtables=1, write_timeout_s=10) as db:
        col = db.create_collection("c", dim=4)
        maintainer = col._maintainer
        assert maintainer is not None
        rng = np.random.default_rng(1)
        release = threading.Timer(0.3, maintainer.lock.release)
        maintainer.lock.acquire()
        release.start()
        t = time.perf_counter()
        for i in range(5):
            col.upsert([f"{i}-{j}" for j in range(10)], rng.normal(size=(10, 4)))
        assert time.perf_counter() - t >= 0.2  # it had to wait for the stalled worker
        assert col.count() == 50


def test_a_slow_merge_does_not_stall_seals_or_writes(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: one worker did seals and merges, so a merge of a large segment (minutes
    at 1M rows) left frozen memtables unsealed until writes hit BusyError."""
    from keeldb.index.hnsw import HnswIndex

    real_build = HnswIndex.build
    merging = threading.Event()
    release = threading.Event()

    def slow_build(*args: object, **kwargs: object) -> object:
        merging.set()
        release.wait(120)  # a long merge: it ends only once the writes below are done
        return real_build(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(HnswIndex, "build", slow_build)
    # write_timeout_s leaves room for slow fsyncs; with seals stuck behind the merge the
    # writes below could never finish, and would raise BusyError after it.
    with keeldb.open(
        db_path, memtable_rows=50, hnsw_min_rows=100, max_frozen_memtables=1, write_timeout_s=10
    ) as db:
        col = db.create_collection("c", dim=4)
        rng = np.random.default_rng(2)
        try:
            for i in range(4):  # 200 rows: seals, then a merge into HNSW starts
                col.upsert([f"{i}-{j}" for j in range(50)], rng.normal(size=(50, 4)))
            assert merging.wait(30), "no merge started"
            for i in range(4, 64):  # 60 more seals while that merge waits
                col.upsert([f"{i}-{j}" for j in range(50)], rng.normal(size=(50, 4)))
        finally:
            release.set()
        assert col.count() == 3200
