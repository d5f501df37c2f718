"""Reliability tests: crash loops, kill -9, failing disks, corruption, concurrency.

Long versions are marked ``slow``: the default suite deselects them (``-m 'not slow'`` in
pyproject.toml) and runs the short versions; ``make reliability`` (or ``pytest -m slow``)
runs the long ones.
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
