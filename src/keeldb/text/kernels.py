"""Text search's two hot loops compiled with numba, each the twin of a numpy path.

This module decides which runs; the compiled code is in :mod:`keeldb.text.kernels_numba`
(imported only when numba is).

- ``score_top`` (:func:`keeldb.text.bm25.search`): one unit's BM25 scoring and top k. A
  query spends most of its time there: a few thousand postings weighted, accumulated per
  row, the best k rows picked. In numpy that is some thirty array operations, each a pass
  over the postings plus a fixed cost; compiled, it is one pass (a block of rows at a
  time) and a k-sized heap
  (SciFact, 809 claims, depth 100: 170 us per query in numpy, 88 us with this kernel and
  its Python set-up, measured 2026-12-02). Once it holds k rows it prunes exactly
  (MaxScore): the lightest terms are added only to rows that may still reach the k-th
  score (``docs/text.md``, "Top k").
- ``fuse_top`` (:func:`keeldb.text.fusion.fuse_arrays`): grouping a few hundred fused
  candidates by key and ranking them, a dozen numpy calls replaced by one.

Each is written in its numpy twin's arithmetic order (BM25: ``len * (k1 * b / avgdl) +
tf + k1 * (1 - b)``, then ``tf * w / denom``, a row's parts added heaviest term first
whether or not the kernel pruned; fusion: a
key's contributions added in list order), and numba does not contract them into fused
multiply-adds without ``fastmath``, so both paths give the same scores bit for bit and
the same ranking, ties included (``tests/text/test_kernels.py`` checks them against each
other on random inputs full of ties).

:func:`kernels` returns the compiled functions, or None when numba cannot be imported or
``KEELDB_TEXT_KERNELS=numpy`` is set: the numpy paths then run. The first use compiles
(about ten seconds) and caches the machine code beside this file (numba's ``cache=True``),
so later processes load it in a fraction of a second. Each function has one explicit
signature (read-only arrays, which writable ones convert to): a memory-mapped segment, a
growing memtable and a read-only dead mask all run the same machine code. Both release
the GIL.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Kernels", "kernels"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {}


Kernel = Callable[..., tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True, slots=True)
class Kernels:
    """The compiled functions (:mod:`keeldb.text.kernels_numba`)."""

    score_top: Kernel
    fuse_top: Kernel


def kernels() -> Kernels | None:
    """The compiled kernels, or None (the numpy paths run); loaded once per process."""
    try:
        return _state["kernels"]  # type: ignore[no-any-return]
    except KeyError:
        pass
    with _lock:
        if "kernels" not in _state:
            _state["kernels"] = _load()
    return _state["kernels"]  # type: ignore[no-any-return]


def _load() -> Kernels | None:
    if os.environ.get("KEELDB_TEXT_KERNELS", "").lower() == "numpy":
        return None
    try:
        from keeldb.text import kernels_numba
    except ImportError:  # an optional speed-up: numpy gives the same answers
        log.debug("numba is not installed: text search runs in numpy")
        return None
    return Kernels(kernels_numba.score_top, kernels_numba.fuse_top)
