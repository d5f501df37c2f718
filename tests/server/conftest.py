"""Fixtures for the HTTP server tests: an in-process app (fast) and a real process."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from keeldb.server import ServerConfig, create_app
from keeldb.server.config import ApiKey, KeyStore

# Test modules here import helpers from server_util.py (pytest runs in importlib mode,
# which does not put test directories on sys.path).
sys.path.insert(0, str(Path(__file__).parent))

with warnings.catch_warnings():
    # Starlette asks for httpx2 at import time; plain httpx works and is what we ship.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def make_api(db: Any) -> Iterator[Callable[..., TestClient]]:
    """Factory: ``make_api(keys=[...], **config)`` → a TestClient over ``db``."""
    clients: list[TestClient] = []

    def make(keys: list[ApiKey] | None = None, **config: Any) -> TestClient:
        cfg = ServerConfig(keys=KeyStore(keys), **config)
        client = TestClient(create_app(db, cfg), raise_server_exceptions=False)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def api(make_api: Callable[..., TestClient]) -> TestClient:
    """A TestClient over a fresh database with default settings and no keys."""
    return make_api()
