"""The compiled text-search kernels against the numpy paths they replace."""

from __future__ import annotations

import random

import numpy as np
import pytest
from text_util import split_units

from keeldb.text import bm25 as bm25_mod
from keeldb.text import bm25_search
from keeldb.text import fusion as fusion_mod
from keeldb.text.kernels import kernels

WORDS = [f"w{i}" for i in range(12)]


def _docs(rng: random.Random, n: int) -> list[list[str]]:
    return [[rng.choice(WORDS) for _ in range(rng.randint(0, 10))] for _ in range(n)]


def _assert_paths_agree(
    units: list, terms: list, k: int, allowed: list | None, monkeypatch
) -> None:
    """The compiled kernel and the numpy path give the same hits and scores, bit for bit."""
    compiled = bm25_search(units, terms, k, allowed=allowed)
    with monkeypatch.context() as m:
        m.setattr(bm25_mod, "kernels", lambda: None)
        plain = bm25_search(units, terms, k, allowed=allowed)
    assert compiled.unit.tolist() == plain.unit.tolist()
    assert compiled.row.tolist() == plain.row.tolist()
    assert compiled.score.tolist() == plain.score.tolist()


def test_the_kernels_load() -> None:
    assert kernels() is not None, "numba is a dependency: the compiled kernels must load"


def test_the_environment_can_turn_the_kernels_off(monkeypatch) -> None:
    from keeldb.text import kernels as kernels_mod

    monkeypatch.setenv("KEELDB_TEXT_KERNELS", "numpy")
    assert kernels_mod._load() is None


@pytest.mark.parametrize(("seed", "block"), [(0, None), (1, None), (2, 37), (3, 1), (4, 64)])
def test_compiled_and_numpy_paths_agree_bit_for_bit(
    seed: int, block: int | None, monkeypatch
) -> None:
    # Many ties (few distinct words, repeated documents), dead rows and filters: both
    # paths must give the same rows in the same order and the same scores exactly. The
    # kernel scores rows a block at a time: small blocks run many of them (and skip empty
    # ones) over these few hundred rows.
    if block is not None:
        monkeypatch.setattr(bm25_mod, "SCORE_BLOCK_ROWS", block)
    rng = random.Random(seed)
    base = _docs(rng, 60)
    docs = [rng.choice(base) for _ in range(900)]
    cut = 500
    sealed, mem = split_units(docs, cut)
    sealed.mark_dead(np.array(rng.sample(range(cut), 80), dtype=np.int64))
    mem.mark_dead(np.array(rng.sample(range(len(docs) - cut), 40), dtype=np.int64))
    for _ in range(20):
        terms = rng.sample(WORDS, rng.randint(1, 6))
        k = rng.choice([1, 3, 10, 50, 1000])
        allowed = None
        if rng.random() < 0.5:
            mask = np.array([rng.random() < 0.5 for _ in docs])
            allowed = [mask[:cut], mask[cut:]]
        _assert_paths_agree([sealed, mem], terms, k, allowed, monkeypatch)


@pytest.mark.parametrize(
    ("seed", "block", "probe"),
    [(0, None, None), (1, 64, 0.0), (2, 64, float("inf")), (3, 1, 0.0), (4, 300, 4.0)],
)
def test_pruned_scoring_returns_the_exhaustive_top_k(
    seed: int, block: int | None, probe: float | None, monkeypatch
) -> None:
    # Zipf-like words: a query mixes common terms (low weight, long postings) with rare
    # ones, so once k rows are kept the kernel stops reading the common terms' postings
    # and adds them to the rows still in the running only (looked up one by one with
    # probe 0, read in full with probe inf). The numpy path scores every posting: both
    # must give the same rows, order and scores, bit for bit.
    if block is not None:
        monkeypatch.setattr(bm25_mod, "SCORE_BLOCK_ROWS", block)
    if probe is not None:
        monkeypatch.setattr(bm25_mod, "PROBE_COST", probe)
    rng = np.random.default_rng(seed)
    vocab = [f"z{i}" for i in range(300)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    docs = [list(rng.choice(vocab, int(rng.integers(1, 40)), p=p)) for _ in range(3000)]
    cut = 2200
    sealed, mem = split_units(docs, cut)
    sealed.mark_dead(rng.choice(cut, 150, replace=False).astype(np.int64))
    mem.mark_dead(rng.choice(len(docs) - cut, 50, replace=False).astype(np.int64))
    for _ in range(25):
        terms = list(rng.choice(vocab[:8], int(rng.integers(1, 4)), replace=False))
        terms += list(rng.choice(vocab[8:], int(rng.integers(1, 5)), replace=False))
        k = int(rng.choice([1, 5, 10, 100]))
        allowed = None
        if rng.random() < 0.3:
            mask = rng.random(len(docs)) < 0.7
            allowed = [mask[:cut], mask[cut:]]
        _assert_paths_agree([sealed, mem], terms, k, allowed, monkeypatch)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_and_numpy_fusion_agree_bit_for_bit(seed: int, monkeypatch) -> None:
    # Few distinct keys (many shared and repeated within a list), coarse scores (ties).
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n_lists = int(rng.integers(1, 4))
        keys = [rng.integers(0, 30, int(rng.integers(0, 40))) for _ in range(n_lists)]
        scores = [np.round(rng.random(len(kk)), 1) for kk in keys]
        how = {
            "fusion": str(rng.choice(["rrf", "weighted"])),
            "higher_is_better": [bool(rng.integers(2)) for _ in keys],
            "weights": None if rng.integers(2) else [float(rng.integers(0, 3)) for _ in keys],
            "depth": int(rng.integers(1, 40)),
            "k": None if rng.integers(2) else int(rng.integers(1, 20)),
        }
        if how["fusion"] == "rrf":
            how["rrf_k"] = float(rng.integers(0, 20))
        compiled = fusion_mod.fuse_arrays(keys, scores, **how)
        with monkeypatch.context() as m:
            m.setattr(fusion_mod, "kernels", lambda: None)
            plain = fusion_mod.fuse_arrays(keys, scores, **how)
        assert compiled[0].tolist() == plain[0].tolist()
        assert compiled[1].tolist() == plain[1].tolist()


def test_the_scoring_kernel_stays_in_bounds_when_every_row_holds_every_term() -> None:
    # The kernel writes each posting's row one past the rows touched so far (no branch);
    # once every row is touched the next posting writes into the spare slot. The kernel
    # does not bounds-check, so its Python form (numpy indexing: IndexError past the end)
    # runs the same code with checks, and must agree with the compiled one.
    from keeldb.text import kernels_numba

    n, terms = 7, 3
    rows = np.tile(np.arange(n, dtype=np.uint32), terms)
    tf = np.arange(1, n * terms + 1, dtype=np.uint32) % 4 + 1
    starts = np.arange(0, n * terms, n, dtype=np.int64)
    ends = starts + n
    weight = np.array([2.0, 1.5, 0.7])  # descending, as the kernel requires
    lengths = np.arange(3, 3 + n, dtype=np.uint32)
    none = np.zeros(0, dtype=bool)
    args = (rows, tf, starts, ends, weight, lengths, none, none, 0.2, 0.3, n)
    for k in (1, 3, n, n + 5):
        for block in (1, 2, 3, n, 1 << 14):
            for probe in (0.0, 16.0, float("inf")):  # pruned terms looked up or read
                plain = kernels_numba.score_top.py_func(*args, k, block, probe)
                compiled = kernels_numba.score_top(*args, k, block, probe)
                assert plain[0].tolist() == compiled[0].tolist()
                assert plain[1].tolist() == compiled[1].tolist()
                assert len(compiled[0]) == min(k, n)
