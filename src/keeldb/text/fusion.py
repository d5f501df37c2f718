"""Fusing ranked candidate lists (dense and BM25) into one ranking. Pure functions.

Each input list is ``[(key, score), ...]`` best first (keys are record ids or any
hashable; scores are only used by weighted fusion). ``higher_is_better`` says how a list's
scores order: BM25 scores grow with relevance, vector distances shrink.

- :func:`rrf`: reciprocal-rank fusion (Cormack et al., 2009): ``sum_i w_i / (rrf_k +
  rank_i)``, ranks from 1; a key missing from a list contributes nothing for it.
- :func:`weighted`: min-max normalise each list's scores to [0, 1] (1 = best), then
  ``sum_i w_i * norm_i``; a key missing from a list contributes 0 for it.

Both cut each list to ``depth`` before fusing and return ``[(key, fused_score)]`` best
first, ties broken by the order of first appearance (list 0 first). Defaults are
documented in ``docs/text.md`` with the measurements that chose them.

:func:`fuse_arrays` is the one implementation of both, over lists given as numpy arrays
of int64 keys (what ``hybrid_search`` fuses: a unit and row packed in one integer), with
no Python step per candidate; :func:`rrf` and :func:`weighted` code their keys as
integers and call it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from keeldb.errors import InvalidArgumentError
from keeldb.text.kernels import kernels

__all__ = ["DEFAULT_DEPTH", "DEFAULT_RRF_K", "RankedList", "fuse_arrays", "rrf", "weighted"]

# Chosen by bench/text_eval.py (docs/text.md, "Hybrid defaults").
DEFAULT_RRF_K = 10
DEFAULT_DEPTH = 100

RankedList = Sequence[tuple[Hashable, float]]


def _check(lists: Sequence[object], weights: Sequence[float] | None, depth: int) -> list[float]:
    if not isinstance(depth, int) or depth < 1:
        raise InvalidArgumentError("depth must be a positive integer")
    if weights is None:
        return [1.0] * len(lists)
    if len(weights) != len(lists):
        raise InvalidArgumentError(f"{len(weights)} weights for {len(lists)} lists")
    out = [float(w) for w in weights]
    if any(not w >= 0 for w in out):
        raise InvalidArgumentError("weights must be >= 0")
    return out


def rrf(
    lists: Sequence[RankedList],
    *,
    rrf_k: float = DEFAULT_RRF_K,
    depth: int = DEFAULT_DEPTH,
    weights: Sequence[float] | None = None,
    k: int | None = None,
) -> list[tuple[Hashable, float]]:
    """Reciprocal-rank fusion of ``lists`` (each best first); the top ``k`` (all if None).

    ``rrf_k`` >= 0 damps the head of each list (60 in the original paper, Chroma and
    Milvus; 2 in Qdrant). A key appearing twice in one list counts at its best rank.
    """
    return _fuse_lists(lists, k, fusion="rrf", rrf_k=rrf_k, depth=depth, weights=weights)


def weighted(
    lists: Sequence[RankedList],
    *,
    higher_is_better: Sequence[bool],
    weights: Sequence[float] | None = None,
    depth: int = DEFAULT_DEPTH,
    k: int | None = None,
) -> list[tuple[Hashable, float]]:
    """Normalised weighted-score fusion of ``lists``; the top ``k`` (all if None).

    Each list's scores (within its first ``depth`` items) are min-max scaled so its best
    item gets 1 and its worst 0 (all 1 when they are equal); a list whose scores are
    distances (``higher_is_better[i]`` False) is flipped first.
    """
    return _fuse_lists(
        lists, k, fusion="weighted", higher_is_better=higher_is_better, depth=depth,
        weights=weights,
    )  # fmt: skip


def _fuse_lists(
    lists: Sequence[RankedList], k: int | None, **how: Any
) -> list[tuple[Hashable, float]]:
    """:func:`fuse_arrays` over lists of (key, score) pairs: each key is coded as an
    integer (in order of first appearance) and decoded again in the result."""
    code: dict[Hashable, int] = {}
    keys, scores = [], []
    for items in lists:
        keys.append(np.array([code.setdefault(key, len(code)) for key, _ in items], np.int64))
        if how["fusion"] == "weighted":
            scores.append(np.array([float(score) for _, score in items], np.float64))
        else:  # scores are not read
            scores.append(np.zeros(len(items), np.float64))
    fused, fused_scores = fuse_arrays(keys, scores, k=k, **how)
    back = list(code)
    return [(back[c], s) for c, s in zip(fused.tolist(), fused_scores.tolist(), strict=True)]


_NO_VALUES = np.zeros(0, dtype=np.float64)


def fuse_arrays(
    keys: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    *,
    fusion: str = "rrf",
    rrf_k: float = DEFAULT_RRF_K,
    higher_is_better: Sequence[bool] | None = None,
    weights: Sequence[float] | None = None,
    depth: int = DEFAULT_DEPTH,
    k: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`rrf` (``fusion="rrf"``) or :func:`weighted` (``"weighted"``, which needs
    ``higher_is_better``) of lists given as arrays: ``keys[i]`` (int64, best first) with
    ``scores[i]`` (same length; read by weighted fusion only). Returns (keys, fused
    scores) of the top ``k`` (all if None), best first, ties in order of first
    appearance (see the module docstring for the formulas)."""
    w = _check(keys, weights, depth)
    if fusion == "rrf":
        if not rrf_k >= 0:
            raise InvalidArgumentError("rrf_k must be >= 0")
    elif fusion == "weighted":
        if higher_is_better is None or len(higher_is_better) != len(keys):
            raise InvalidArgumentError("higher_is_better needs one flag per list")
    else:
        raise InvalidArgumentError(f"unknown fusion {fusion!r}")
    lists = [np.asarray(kk, dtype=np.int64)[:depth] for kk in keys]
    if fusion == "weighted" and any(
        len(ss) < len(kk) for kk, ss in zip(lists, scores, strict=True)
    ):
        raise InvalidArgumentError("weighted fusion needs a score for every key")
    flips = [not h for h in higher_is_better] if higher_is_better is not None else None
    compiled = kernels()
    if compiled is not None:  # the same contributions, grouping and order, compiled
        return _fuse_compiled(compiled.fuse_top, lists, scores, fusion, rrf_k, flips, w, k)
    parts_k, parts_c = [], []
    for li, (kk, ss) in enumerate(zip(lists, scores, strict=True)):
        if not len(kk):
            continue
        if fusion == "rrf":
            contrib = w[li] / (rrf_k + np.arange(1, len(kk) + 1, dtype=np.float64))
        else:
            assert flips is not None
            vals = np.asarray(ss, dtype=np.float64)[: len(kk)]
            vals = -vals if flips[li] else vals
            span = float(vals.max()) - float(vals.min())
            norm = (vals - vals.min()) / span if span > 0 else np.ones(len(vals))
            contrib = w[li] * norm
        parts_k.append(kk)
        parts_c.append(contrib)
    if not parts_k:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    return _group_and_rank(parts_k, parts_c, k)


def _fuse_compiled(
    fuse_top: Any,
    lists: list[np.ndarray],
    scores: Sequence[np.ndarray],
    fusion: str,
    rrf_k: float,
    flips: list[bool] | None,
    w: list[float],
    k: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fuse_arrays` through the compiled kernel."""
    every = np.concatenate(lists)
    flat_vals = _NO_VALUES
    if fusion == "weighted":
        flat_vals = np.concatenate(
            [
                np.asarray(ss, dtype=np.float64)[: len(kk)]
                for kk, ss in zip(lists, scores, strict=True)
            ]
        )
    first, fused = fuse_top(
        every,
        flat_vals,
        np.array([len(kk) for kk in lists], dtype=np.int64),
        np.array(w, dtype=np.float64),
        np.array(flips if flips is not None else [False] * len(lists), dtype=bool),
        float(rrf_k),
        fusion == "weighted",
        -1 if k is None else k,
    )
    return every[first], fused


def _group_and_rank(
    parts_k: list[np.ndarray], parts_c: list[np.ndarray], k: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """The numpy path's grouping of the lists' keys (``parts_k``, with contributions
    ``parts_c``) and ranking of the top ``k``."""
    # Positions in ``every`` grow list by list, rank by rank, so a key's first position
    # is its first appearance, and a stable sort by key keeps each key's entries in
    # that order (a list's entries for one key adjacent, its best rank first).
    every = np.concatenate(parts_k)
    list_of = np.repeat(np.arange(len(parts_k), dtype=np.int64), [len(p) for p in parts_k])
    by_key = np.argsort(every, kind="stable")
    sk, sl = every[by_key], list_of[by_key]
    contrib = np.concatenate(parts_c)[by_key]
    same_key = sk[1:] == sk[:-1]
    # a key twice in one list counts at its best (first) rank: later entries add nothing
    contrib[1:][same_key & (sl[1:] == sl[:-1])] = 0.0
    new_key = np.concatenate(([True], ~same_key))
    starts = np.flatnonzero(new_key)
    # bincount adds a key's entries in order (reduceat may pair them differently)
    fused = np.bincount(np.cumsum(new_key) - 1, weights=contrib)
    appear = by_key[starts]
    # best first: by fused score, ties by first appearance
    by_appear = np.argsort(appear)
    order = by_appear[np.argsort(-fused[by_appear], kind="stable")]
    if k is not None:
        order = order[:k]
    return sk[starts][order], fused[order]
