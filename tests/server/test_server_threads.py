"""Each engine call in the server stays on its worker thread (no BLAS/OpenMP fan-out)."""

from __future__ import annotations

import subprocess
import sys
import threading

import faiss

from keeldb.server.threads import worker_initializer


def test_worker_initializer_limits_openmp_in_that_thread_only() -> None:
    before = faiss.omp_get_max_threads()
    seen: list[int] = []

    def worker() -> None:
        worker_initializer(1)
        seen.append(faiss.omp_get_max_threads())

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert seen == [1]
    assert faiss.omp_get_max_threads() == before  # the calling thread is untouched


def test_limit_blas_threads_sets_numpy_openblas() -> None:
    # Process-wide, so checked in a child process.
    code = (
        "import ctypes, numpy\n"
        "from keeldb.server.threads import limit_blas_threads\n"
        "changed = limit_blas_threads(1)\n"
        "lib = next((p for p in changed if 'scipy_openblas' in p), None)\n"
        "if lib is None:\n"
        "    print('SKIP', changed)\n"
        "else:\n"
        "    get = getattr(ctypes.CDLL(lib), 'scipy_openblas_get_num_threads64_')\n"
        "    print('THREADS', get())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "THREADS 1" in done.stdout or done.stdout.startswith("SKIP")
