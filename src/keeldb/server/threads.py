"""Keep each request's numeric work on its own worker thread.

A server gets its parallelism from running many requests at once (the worker pool). If
every search also fanned out to the BLAS/OpenMP thread pools, 8 concurrent searches on 2
cores would start 16+ compute threads that spin-wait for each other: measured on the
2-core bench host while it was busy, one 5,000-row exact search took ~16 ms with the
default BLAS threads and ~1 ms with one.
So the server runs each engine call single-threaded:

* numpy's OpenBLAS (a pthreads build, one process-wide setting) is set to ``n`` threads
  by :func:`limit_blas_threads`, called by ``keeldb serve`` for its own process only;
* faiss's OpenMP (and the OpenMP OpenBLAS bundled with faiss) reads a per-thread setting,
  so :func:`worker_initializer` sets it in each worker thread. The engine's background
  threads (HNSW builds on seal/compaction) keep their default and use every core.

Both are best effort: an unknown BLAS build is left alone (logged at debug level).
"""

from __future__ import annotations

import ctypes
import logging
import re
import sys

__all__ = ["limit_blas_threads", "worker_initializer"]

log = logging.getLogger("keeldb.server")

# Setter names exported by the OpenBLAS builds numpy ships or links (pthreads builds; the
# OpenMP builds follow omp_set_num_threads, handled per thread below).
_SETTERS = (
    "scipy_openblas_set_num_threads64_",
    "scipy_openblas_set_num_threads",
    "openblas_set_num_threads64_",
    "openblas_set_num_threads",
)


def _loaded_blas_libraries() -> list[str]:
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            paths = {line.split()[-1] for line in maps if len(line.split()) >= 6}
    except OSError:  # not Linux: leave BLAS alone
        return []
    return sorted(p for p in paths if re.search(r"openblas|mkl_rt|blis", p))


def limit_blas_threads(n: int) -> list[str]:
    """Set every loaded pthreads OpenBLAS to ``n`` threads; return the libraries changed.

    Process-wide: call it only in a process that is a server (``keeldb serve`` does).
    """
    changed = []
    for path in _loaded_blas_libraries():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                changed.append(path)
                break
    log.debug("BLAS threads set to %d in %s", n, changed or "no library")
    return changed


def worker_initializer(n: int) -> None:
    """Thread-pool initializer: this thread's OpenMP work (faiss) uses ``n`` threads."""
    faiss = sys.modules.get("faiss")
    if faiss is not None:
        try:
            faiss.omp_set_num_threads(n)
        except Exception:  # an exotic faiss build: not worth failing a worker over
            log.debug("faiss.omp_set_num_threads failed", exc_info=True)
