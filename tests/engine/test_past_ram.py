"""Past RAM, short version: a collection whose files are over 3x a memory limit imposed on
the searching process (cgroup v1) is opened and searched without the process being
killed, with the same results as without the limit. The full-size run (1M x 384 under
512 MiB, with QPS) is ``python -m bench.past_ram`` (``make bench``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bench.memlimit import available
from bench.past_ram import build, open_options, run_pair

LIMIT = 112 << 20  # the interpreter with numpy and faiss loaded takes ~70 MiB of it


def test_search_files_three_times_the_memory_limit(tmp_path: Path) -> None:
    reason = available()
    if reason is not None:
        pytest.skip(f"PAST-RAM TEST NOT RUN: {reason}")
    db_path = tmp_path / "db"
    files = build(db_path, rows=700_000, dim=128, hnsw=False)
    assert files >= 3 * LIMIT, files
    queries = np.random.default_rng(7).standard_normal((5, 128))
    result = run_pair(db_path, queries, 10, LIMIT, open_options(False, 700_000))
    limited = result["limited"]
    assert isinstance(limited, dict)
    assert limited["returncode"] == 0 and not limited["oom_killed"], limited
    assert result["same_ids"] is True
    assert 0 < int(limited["max_usage_bytes"]) <= LIMIT
