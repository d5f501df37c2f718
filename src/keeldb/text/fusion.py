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
    parts_k, parts_c, parts_f = [], [], []
    for li, (kk, ss) in enumerate(zip(keys, scores, strict=True)):
        kk = np.asarray(kk, dtype=np.int64)[:depth]
        if not len(kk):
            continue
        ranks = np.arange(1, len(kk) + 1, dtype=np.int64)
        if fusion == "rrf":
            contrib = w[li] / (rrf_k + ranks.astype(np.float64))
        else:
            assert higher_is_better is not None
            vals = np.asarray(ss, dtype=np.float64)[:depth]
            vals = vals if higher_is_better[li] else -vals
            span = float(vals.max()) - float(vals.min())
            norm = (vals - vals.min()) / span if span > 0 else np.ones(len(vals))
            contrib = w[li] * norm
        if len(kk) > 1 and not _distinct(kk):
            # a key twice in one list counts at its best (first) rank
            first = np.sort(np.unique(kk, return_index=True)[1])
            kk, contrib, ranks = kk[first], contrib[first], ranks[first]
        parts_k.append(kk)
        parts_c.append(contrib)
        parts_f.append(li * depth + ranks)
    if not parts_k:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    every = np.concatenate(parts_k)
    uniq, where, inverse = np.unique(every, return_index=True, return_inverse=True)
    fused = np.bincount(inverse, weights=np.concatenate(parts_c), minlength=len(uniq))
    # first appearances grow along ``every`` (list by list, rank by rank), so a key's
    # first occurrence there is its first appearance
    appear = np.concatenate(parts_f)[where]
    order = np.lexsort((appear, -fused))
    if k is not None:
        order = order[:k]
    return uniq[order], fused[order]


def _distinct(keys: np.ndarray) -> bool:
    """Whether ``keys`` holds no key twice (hybrid search's lists never do)."""
    ordered = np.sort(keys)
    return not bool(np.any(ordered[1:] == ordered[:-1]))
