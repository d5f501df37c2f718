"""``Collection.compact(progress=...)``: phase reports before and after each phase."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import keeldb

SMALL = {"memtable_rows": 200, "hnsw_min_rows": 300}


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def test_compact_reports_each_phase_before_and_after(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        col = db.create_collection("c", dim=8)
        col.upsert([f"r{i}" for i in range(500)], _vectors(500))
        col.delete([f"r{i}" for i in range(10)])
        col.compact(progress=lambda phase, done, total: calls.append((phase, done, total)))
        assert col.info().index_type == "hnsw"
        assert col.count() == 490
    phases = [c[0] for c in calls]
    assert phases[:2] == ["sealing", "sealing"]
    assert "indexing" in phases and "writing" in phases
    # Every phase is reported as started (done 0) and then finished (done == total).
    for phase in set(phases):
        mine = [c for c in calls if c[0] == phase]
        assert len(mine) % 2 == 0
        for start, end in zip(mine[::2], mine[1::2], strict=True):
            assert start[1] == 0 and end[1] == end[2] == start[2]
    indexing = [c for c in calls if c[0] == "indexing"]
    assert sum(c[2] for c in indexing[1::2]) >= 490


def test_compact_without_progress_and_background_merges_report_nothing(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        col = db.create_collection("c", dim=8)
        col.upsert([f"r{i}" for i in range(100)], _vectors(100))
        col.compact(progress=lambda *a: calls.append(a))
        n = len(calls)
        assert n >= 2
        col.upsert([f"s{i}" for i in range(600)], _vectors(600, seed=1))
        col.compact()  # no callback: the previous one is not kept
    assert len(calls) == n
