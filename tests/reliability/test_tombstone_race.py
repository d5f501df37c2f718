"""Lock-free readers against a writer that deletes and overwrites rows, in a child process
(a corrupted heap kills the process that has it, which must not be pytest's).

Regression: exact searches index their distances with a unit's dead mask while the write
path set entries of that mask in place; numpy sized a buffer from the mask and then read
more True entries than it had counted, writing past the buffer. The kill -9 soak's writer
died of it with glibc's "malloc(): invalid next size" or "malloc assertion failure in
sysmalloc" in about half its runs, and this workload killed its process in every run
before dead masks became copy-on-write (tests/engine/test_tombstone_snapshots.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CHILD = textwrap.dedent(
    """
    import sys, threading
    import numpy as np
    import keeldb

    path, batches, background = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    db = keeldb.open(path, durability="none", memtable_rows=300, hnsw_min_rows=600,
                     background=background)
    col = db.create_collection("c", 16, "cosine")
    stop = threading.Event()
    errors = []

    def reader(seed, exact, flt):
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                col.search(rng.normal(size=16).astype(np.float32), k=10, exact=exact,
                           filter=flt, with_metadata=False)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(1, True, None)),
               threading.Thread(target=reader, args=(2, False, {"even": True}))]
    for t in threads:
        t.start()
    rng = np.random.default_rng(3)
    for i in range(batches):
        n = int(rng.integers(1, 60))
        ids = [f"r{int(j):05d}" for j in rng.choice(3000, size=n, replace=False)]
        if rng.random() < 0.25:
            col.delete(ids)
        else:
            col.upsert(ids, rng.normal(size=(n, 16)).astype(np.float32),
                       [{"even": j % 2 == 0} for j in range(n)])
    stop.set()
    for t in threads:
        t.join()
    db.close()
    if errors:
        raise errors[0]
    print("ok")
    """
)


@pytest.mark.parametrize("background", [False, True])
def test_readers_survive_concurrent_deletes_and_overwrites(
    fast_tmp: Path, background: bool
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(fast_tmp / "db"), "500", "1" if background else "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.strip().endswith("ok")
