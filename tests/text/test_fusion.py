"""Reciprocal-rank and weighted-score fusion."""

from __future__ import annotations

import numpy as np
import pytest
from text_util import on_both_paths

from keeldb.errors import InvalidArgumentError
from keeldb.text import fusion as fusion_mod
from keeldb.text import rrf, weighted
from keeldb.text.fusion import fuse_arrays

fusion_path = on_both_paths(fusion_mod)


def test_rrf_formula_and_order() -> None:
    dense = [("a", 0.1), ("b", 0.2), ("c", 0.3)]
    bm25 = [("c", 9.0), ("a", 5.0), ("d", 1.0)]
    got = dict(rrf([dense, bm25], rrf_k=10))
    assert got["a"] == pytest.approx(1 / 11 + 1 / 12)
    assert got["c"] == pytest.approx(1 / 13 + 1 / 11)
    assert got["b"] == pytest.approx(1 / 12)
    assert got["d"] == pytest.approx(1 / 13)
    assert [k for k, _ in rrf([dense, bm25], rrf_k=10)] == ["a", "c", "b", "d"]


def test_rrf_depth_weights_k_and_ties() -> None:
    a = [("x", 0), ("y", 0), ("z", 0)]
    b = [("y", 0), ("x", 0)]
    assert rrf([a, b], depth=1, rrf_k=20) == [("x", 1 / 21), ("y", 1 / 21)]  # tie: first seen first
    assert [k for k, _ in rrf([a, b], weights=[0.0, 1.0])] == ["y", "x", "z"]
    assert len(rrf([a, b], k=2)) == 2
    assert rrf([[("x", 0), ("x", 0)]], rrf_k=0) == [("x", 1.0)]  # duplicate counts once


def test_weighted_normalises_and_flips_distances() -> None:
    dense = [("a", 0.1), ("b", 0.3), ("c", 0.5)]  # distances: a best
    bm25 = [("c", 10.0), ("b", 6.0), ("d", 2.0)]
    got = dict(weighted([dense, bm25], higher_is_better=[False, True], weights=[0.5, 0.5]))
    assert got["a"] == pytest.approx(0.5)
    assert got["b"] == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert got["c"] == pytest.approx(0.0 + 0.5)
    assert got["d"] == pytest.approx(0.0)
    single = weighted([[("q", 3.0)]], higher_is_better=[True])
    assert single == [("q", 1.0)]


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError):
        rrf([[]], depth=0)
    with pytest.raises(InvalidArgumentError):
        rrf([[], []], weights=[1.0])
    with pytest.raises(InvalidArgumentError):
        rrf([[]], rrf_k=-1)
    with pytest.raises(InvalidArgumentError):
        weighted([[]], higher_is_better=[])
    with pytest.raises(InvalidArgumentError):
        rrf([[]], weights=[-1.0])


def _reference(lists, w, depth, k, contribution):  # type: ignore[no-untyped-def]
    """Fusion written out per item in Python (the formulas of keeldb.text.fusion's
    docstring): ``contribution(w_li, li, rank, value, cut)`` is one list item's share."""
    scores: dict[object, float] = {}
    first: dict[object, int] = {}
    for li, items in enumerate(lists):
        cut = list(items[:depth])
        seen: set[object] = set()
        for rank, (key, value) in enumerate(cut, start=1):
            if key in seen:
                continue
            seen.add(key)
            first.setdefault(key, li * depth + rank)
            scores[key] = scores.get(key, 0.0) + contribution(w[li], li, rank, value, cut)
    keys = sorted(scores, key=lambda key: (-scores[key], first[key]))
    return [(key, scores[key]) for key in (keys if k is None else keys[:k])]


@pytest.mark.parametrize("seed", range(40))
def test_fusion_equals_the_per_item_reference(seed: int) -> None:
    """rrf() and weighted() (string keys) and fuse_arrays (int keys) give the reference's
    keys, scores (bit for bit) and tie order, on lists with repeated keys, tied scores,
    weights and varied depths."""
    rng = np.random.default_rng(seed)
    n_lists = int(rng.integers(1, 4))
    keys = [rng.integers(0, 40, size=int(rng.integers(0, 60))) for _ in range(n_lists)]
    # few distinct score values: ties in the inputs and in the fused scores
    scores = [rng.integers(0, 5, size=len(k)).astype(np.float64) / 4 for k in keys]
    pairs = zip(keys, scores, strict=True)
    lists = [list(zip([f"d{x}" for x in k], s.tolist(), strict=True)) for k, s in pairs]
    depth = int(rng.integers(1, 70))
    k = None if rng.random() < 0.3 else int(rng.integers(1, 30))
    weights = None if rng.random() < 0.5 else rng.integers(0, 4, size=n_lists).tolist()
    w = [1.0] * n_lists if weights is None else [float(x) for x in weights]
    rrf_k = float(rng.choice([0, 2, 10, 60]))
    hib = (rng.random(n_lists) < 0.5).tolist()

    def as_ints(fused: list[tuple[object, float]]) -> list[tuple[int, float]]:
        return [(int(str(key)[1:]), score) for key, score in fused]

    def rrf_share(wl: float, li: int, rank: int, value: float, cut: list) -> float:  # type: ignore[type-arg]
        return wl / (rrf_k + rank)

    def weighted_share(wl: float, li: int, rank: int, value: float, cut: list) -> float:  # type: ignore[type-arg]
        vals = [v if hib[li] else -v for _, v in cut]
        lo, hi = min(vals), max(vals)
        v = value if hib[li] else -value
        return wl * ((v - lo) / (hi - lo) if hi > lo else 1.0)

    want = _reference(lists, w, depth, k, rrf_share)
    assert rrf(lists, rrf_k=rrf_k, depth=depth, weights=weights, k=k) == want
    got_k, got_s = fuse_arrays(keys, scores, rrf_k=rrf_k, depth=depth, weights=weights, k=k)
    assert list(zip(got_k.tolist(), got_s.tolist(), strict=True)) == as_ints(want)
    want = _reference(lists, w, depth, k, weighted_share)
    assert weighted(lists, higher_is_better=hib, depth=depth, weights=weights, k=k) == want
    got_k, got_s = fuse_arrays(
        keys, scores, fusion="weighted", higher_is_better=hib, depth=depth,
        weights=weights, k=k,
    )  # fmt: skip
    assert list(zip(got_k.tolist(), got_s.tolist(), strict=True)) == as_ints(want)
