"""The thread policy of the engine's faiss searches (``docs/params.md``, "Threads").

faiss parallelises with OpenMP. A single query's scan of a flat or compact index fans out
over the database rows on every core; on a busy machine those threads spin against the
other processes (measured for issue 16: a compact scan took 0.28 ms on one thread and
4.35 ms on two with two CPU-burning processes running). So:

* **one query never fans out**: it runs on ``per_query`` threads (default 1);
* **a batch parallelises across its queries**, on at most ``per_batch`` threads (default:
  every core), shared by the batches running at the same moment: a batch that starts
  while ``a - 1`` others run gets ``max(1, cores // a)`` (a running batch keeps what it
  started with), so concurrent callers (threads, server workers) do not multiply threads;
* a caller's own OpenMP setting is a ceiling: a thread that set fewer threads (the HTTP
  server's workers run with ``--threads-per-request``) keeps its limit.

OpenMP keeps the thread count per calling thread, so setting it around one call affects
nothing else; the caller's value is restored afterwards. numpy's BLAS (exact scans of
large batches) has one process-wide setting and is left alone here (``keeldb serve`` limits
it for its own process: ``keeldb.server.threads``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import faiss

__all__ = [
    "per_query_threads",
    "run_searching",
    "search_threads",
    "set_search_threads",
    "thread_budget",
]

_CORES = os.cpu_count() or 1
_lock = threading.Lock()
_active_batches = 0
_per_query = 1
_per_batch = _CORES


def set_search_threads(*, per_query: int = 1, per_batch: int | None = None) -> None:
    """Set the policy for the whole process: OpenMP threads for a single query
    (``per_query``, default 1) and at most ``per_batch`` for a batch (default: every
    core). Raises ValueError for a count below 1."""
    global _per_query, _per_batch
    if per_query < 1 or (per_batch is not None and per_batch < 1):
        raise ValueError("thread counts must be at least 1")
    with _lock:
        _per_query = per_query
        _per_batch = _CORES if per_batch is None else per_batch


def per_query_threads() -> int:
    """The policy's threads for a single query (:func:`set_search_threads`)."""
    return _per_query


def thread_budget(queries: int, concurrent_batches: int, ceiling: int) -> int:
    """Threads for a search of ``queries`` queries while ``concurrent_batches`` batches
    (this one included) run, under the caller's ``ceiling`` (the policy, as numbers)."""
    if queries <= 1:
        return max(1, min(_per_query, ceiling))
    share = max(1, _CORES // max(concurrent_batches, 1))
    return max(1, min(_per_batch, share, ceiling, queries))


class search_threads:  # noqa: N801 - used as a function: ``with search_threads(n) as k``
    """Run the enclosed faiss call of ``queries`` queries on the policy's thread count
    (bound by ``as``); the calling thread's OpenMP setting is restored on exit.

    A class rather than a generator-based context manager: it wraps every faiss call of
    a search (two per single query), and ``contextlib``'s machinery cost more than the
    rest of the policy together (issue 16: fixed cost per query)."""

    __slots__ = ("_batch", "_n", "_previous")

    def __init__(self, queries: int) -> None:
        self._batch = queries > 1
        self._previous = 0
        self._n = queries

    def __enter__(self) -> int:
        global _active_batches
        queries = self._n
        if self._batch:
            with _lock:
                _active_batches += 1
                active = _active_batches
        else:
            active = 1
        previous = faiss.omp_get_max_threads()
        n = thread_budget(queries, active, previous)
        if n != previous:
            faiss.omp_set_num_threads(n)
        self._previous, self._n = previous, n
        return n

    def __exit__(self, *exc: object) -> None:
        global _active_batches
        if self._n != self._previous:
            faiss.omp_set_num_threads(self._previous)
        if self._batch:
            with _lock:
                _active_batches -= 1


def run_searching(
    call: Callable[..., Any], args: tuple[Any, ...], queries: int, serial_max: int
) -> Any:
    """``call(*args)``, a faiss call for ``queries`` queries, under :class:`search_threads`
    unless ``queries <= serial_max``: faiss runs such a call on the calling thread (its own
    OpenMP condition, given by the caller), so the policy's set-up (a lock and two OpenMP
    calls per search) would change nothing (issue 16: fixed cost per query)."""
    if queries <= serial_max:
        return call(*args)
    with search_threads(queries):
        return call(*args)
