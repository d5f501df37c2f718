"""Reliability tests: crash loops, kill -9, failing disks, corruption, concurrency.

Long versions are marked ``slow`` and only run with ``-m slow`` (``make bench``) or with
``KEELDB_SLOW=1``; the default suite runs the short versions.
"""

from __future__ import annotations

import os
import sys
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
