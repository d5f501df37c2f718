"""Fixtures for the sharded-database tests: one local Ray per test module.

Ray is started bound to 127.0.0.1 only (``loopback_only``; ``test_loopback`` checks no
Ray process listens elsewhere), with usage statistics off, no dashboard, one CPU, and its
temporary directory under a short path in /tmp (Ray's Unix socket paths must stay under
~107 bytes, which pytest's tmp_path would overrun).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator

import pytest
import ray

from keeldb.ray.shardset import loopback_only


def start_local_ray(num_cpus: int = 1) -> str:
    """Start a loopback-only local Ray; returns its temporary directory."""
    loopback_only()
    temp_dir = tempfile.mkdtemp(prefix="kdbray-", dir="/tmp")
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=num_cpus,
        _temp_dir=temp_dir,
        log_to_driver=False,
    )
    return temp_dir


@pytest.fixture(scope="module")
def local_ray() -> Iterator[str]:
    """A local Ray for the whole module; yields its temporary directory."""
    temp_dir = start_local_ray()
    try:
        yield temp_dir
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
