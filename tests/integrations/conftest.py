"""Fixtures for the framework integrations: a real ``keeldb serve`` for the remote
backend, and no network beyond loopback (nothing may download at run time: no NLTK data,
no tiktoken encodings, no models)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from keeldb.server.testing import ServerProcess

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every integration test fails on a connection to anything but loopback."""
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise AssertionError(f"network access to {address!r} during a test")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="session")
def keel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server on 127.0.0.1 for every integration test (each uses its own
    collection, dropped afterwards)."""
    root = Path(tmp_path_factory.mktemp("integrations-server"))
    with ServerProcess(root / "db") as srv:
        yield srv
