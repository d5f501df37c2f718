"""Reliability tests: crash loops, kill -9, failing disks, corruption, concurrency.

Long versions are marked ``slow`` and only run with ``-m slow`` (``make bench``) or with
``KEELDB_SLOW=1``; the default suite runs the short versions.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules import helpers from reliability_util.py (importlib mode does not put test
# directories on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    markexpr = config.getoption("markexpr", "") or ""
    if "slow" in markexpr or os.environ.get("KEELDB_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="long reliability run: use -m slow or KEELDB_SLOW=1")
    for item in items:
        if HERE in Path(str(item.path)).parents and "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """A scratch directory on tmpfs when there is one (fsync costs ~3 ms on this machine's
    disk and a crash loop does thousands; the fault-injecting file system models
    durability itself, so the real fsyncs add nothing to these tests)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    path = Path(tempfile.mkdtemp(prefix="keeldb-rel-", dir=shm))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
