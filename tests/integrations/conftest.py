"""Fixtures for the framework integrations: a real ``keeldb serve`` for the remote backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from keeldb.server.testing import ServerProcess


@pytest.fixture(scope="session")
def keel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on 127.0.0.1 for every integration test (each uses its own
    collection, dropped afterwards)."""
    root = Path(tmp_path_factory.mktemp("integrations-server"))
    with ServerProcess(root / "db") as srv:
        yield srv
