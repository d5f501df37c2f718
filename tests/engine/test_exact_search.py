"""``exact=True``: every live (matching) row compared, whatever the segments' indexes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.index import exact as exact_mod


def _want(d: np.ndarray, ok: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in ok[np.argsort(d[ok], kind="stable")[:k]]]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_search_matches_brute_force_on_hnsw_segments(
    db_path: str, metric: str, brute: Any
) -> None:
    rng = np.random.default_rng(3)
    n, dim = 3000, 16
    base = rng.normal(size=(n, dim)).astype(np.float32)
    groups = rng.integers(0, 4, size=n)
    with keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000) as db:
        col = db.create_collection("c", dim=dim, metric=metric, m=4, ef_construction=8)
        col.upsert([str(i) for i in range(n)], base, [{"g": int(g)} for g in groups])
        col.compact()
        gone = list(range(0, n, 7))
        col.delete([str(i) for i in gone])
        live = np.ones(n, dtype=bool)
        live[gone] = False
        # a few rows still in the memtable
        extra = rng.normal(size=(50, dim)).astype(np.float32)
        col.upsert([str(n + i) for i in range(50)], extra, [{"g": 1}] * 50)
        all_base = np.vstack([base, extra])
        all_live = np.concatenate([live, np.ones(50, dtype=bool)])
        all_groups = np.concatenate([groups, np.ones(50, dtype=int)])
        assert {s.kind for s in col.stats().segments} >= {"hnsw", "memtable"}
        plans: list[dict[str, str]] = []
        col.on_search(lambda s: plans.append(s.plans))
        qs = rng.normal(size=(20, dim)).astype(np.float32)
        batch = col.search_batch(qs, k=10, exact=True)
        batch_f = col.search_batch(qs, k=10, exact=True, filter={"g": 1})
        for i, q in enumerate(qs):
            d = brute(all_base, q, metric)
            want = _want(d, np.flatnonzero(all_live), 10)
            hits = col.search(q, k=10, exact=True)
            assert [int(h.id) for h in hits] == want
            assert [int(h.id) for h in batch[i]] == want
            np.testing.assert_allclose([h.distance for h in hits], d[want], rtol=1e-4, atol=1e-4)
            want_f = _want(d, np.flatnonzero(all_live & (all_groups == 1)), 10)
            assert [int(h.id) for h in col.search(q, k=10, exact=True, filter={"g": 1})] == want_f
            assert [int(h.id) for h in batch_f[i]] == want_f
        seg_plans = {p for ps in plans for name, p in ps.items() if name != "mem"}
        assert seg_plans == {"exact", "exact-filtered"}


def test_exact_rejects_ef_and_non_bool(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a"], [[1.0, 0.0, 0.0, 0.0]])
    with pytest.raises(keeldb.InvalidArgumentError, match="ef has no meaning"):
        col.search([1.0, 0.0, 0.0, 0.0], exact=True, ef=10)
    with pytest.raises(keeldb.InvalidArgumentError, match="exact must be"):
        col.search_batch([[1.0, 0.0, 0.0, 0.0]], exact=1)  # type: ignore[arg-type]
    assert col.search([1.0, 0.0, 0.0, 0.0], exact=False, ef=10)[0].id == "a"


def test_big_exact_batches_are_scored_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocked scoring gives the same answer as one block (small block size forced)."""
    rng = np.random.default_rng(9)
    base = rng.normal(size=(500, 8)).astype(np.float32)
    qs = rng.normal(size=(37, 8)).astype(np.float32)
    exclude = np.zeros(500, dtype=bool)
    exclude[::3] = True
    rows = np.flatnonzero(~exclude)
    for metric in ("l2", "ip"):
        whole = [
            exact_mod.exact_search(base, qs, 5, metric, exclude=exclude),
            exact_mod.exact_search(base, qs, 5, metric, rows=rows),
        ]
        with monkeypatch.context() as m:
            m.setattr(exact_mod, "EXACT_BLOCK_SCORES", 1000)  # two queries per block
            blocked = [
                exact_mod.exact_search(base, qs, 5, metric, exclude=exclude),
                exact_mod.exact_search(base, qs, 5, metric, rows=rows),
            ]
        for (d1, r1), (d2, r2) in zip(whole, blocked, strict=True):
            np.testing.assert_array_equal(r1, r2)
            np.testing.assert_allclose(d1, d2, rtol=1e-6)


def test_exact_search_over_many_chosen_rows_gathers_them_a_slice_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review finding: a batch (> 32 queries) over a broad filter copied every chosen
    row at once (1.5 GB for a 1M x 384 segment). Same answer, bounded copy."""
    import tracemalloc

    rng = np.random.default_rng(4)
    base = rng.normal(size=(50_000, 64)).astype(np.float32)  # 12.8 MB
    qs = rng.normal(size=(40, 64)).astype(np.float32)
    rows = np.flatnonzero(rng.random(50_000) < 0.9)
    for metric in ("l2", "ip"):
        norms = np.einsum("ij,ij->i", base, base) if metric == "l2" else None
        want = exact_mod.exact_search(base, qs, 10, metric, rows=rows, sq_norms=norms)
        with monkeypatch.context() as m:
            m.setattr(exact_mod, "EXACT_GATHER_BYTES", 1 << 20, raising=False)
            tracemalloc.start()
            got = exact_mod.exact_search(base, qs, 10, metric, rows=rows, sq_norms=norms)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-6)
        assert peak < 6 << 20, f"{metric}: peak {peak / 1e6:.1f} MB while searching"
