"""Each filtered-search plan returns the exact top k among matching live rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import keeldb


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_repeated_filter_uses_compact_copy_and_stays_exact(
    db_path: str, metric: str, brute: Any
) -> None:
    rng = np.random.default_rng(5)
    n, dim = 2000, 16
    base = rng.normal(size=(n, dim)).astype(np.float32)
    groups = rng.integers(0, 10, size=n)
    meta = [{"g": int(g)} for g in groups]
    with keeldb.open(db_path, memtable_rows=500, hnsw_min_rows=1000) as db:
        col = db.create_collection("c", dim=dim, metric=metric)
        col.upsert([str(i) for i in range(n)], base, meta)
        col.compact()
        plans: list[str] = []
        col.on_search(lambda s: plans.extend(s.plans.values()))
        flt = {"g": {"$in": [1, 2, 3]}}
        live = np.ones(n, dtype=bool)
        for round_ in range(6):
            if round_ == 3:  # deletes change the allowed rows: the compact copy must follow
                gone = [str(i) for i in np.flatnonzero(np.isin(groups, [1, 2]))[:150]]
                col.delete(gone)
                live[[int(i) for i in gone]] = False
            for _ in range(5):
                q = rng.normal(size=dim).astype(np.float32)
                hits = col.search(q, k=10, filter=flt)
                d = brute(base, q, metric)
                ok = np.flatnonzero(np.isin(groups, [1, 2, 3]) & live)
                want = ok[np.argsort(d[ok], kind="stable")[:10]]
                assert [int(h.id) for h in hits] == want.tolist()
                got = [h.distance for h in hits]
                np.testing.assert_allclose(got, d[want], rtol=1e-4, atol=1e-4)
        assert "compact-filtered" in plans
        # batches take the same plans and agree with single searches
        qs = rng.normal(size=(4, dim)).astype(np.float32)
        batch = col.search_batch(qs, k=10, filter=flt)
        for q, hits in zip(qs, batch, strict=True):
            assert [h.id for h in hits] == [h.id for h in col.search(q, k=10, filter=flt)]
