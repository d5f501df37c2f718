"""Property-based run over /openapi.json: whatever schemathesis sends, no 5xx comes back.

Two passes: one with generated path parameters (mostly unknown collections and odd
names), one pinned to an existing collection so generated bodies reach the engine. Kept
small (``max_examples``) so it runs in seconds; raise it locally to dig deeper.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import keeldb
from keeldb.server import ServerConfig, create_app

MAX_EXAMPLES = 20


# The schemas are built at import (schemathesis parametrizes at collection), so the
# database is opened here and closed by the module fixture below.
_tmp = tempfile.TemporaryDirectory(prefix="keeldb-fuzz-")
fuzz_db = keeldb.open(Path(_tmp.name) / "db")


@pytest.fixture(scope="module", autouse=True)
def _close_fuzz_db() -> Iterator[None]:
    yield
    fuzz_db.close()
    _tmp.cleanup()


def _ensure_target() -> None:
    """Keep workspace 'default', collection 'c' (dim 4) alive between cases."""
    try:
        col = fuzz_db.get_collection("c")
        if col.dim == 4:
            return
        fuzz_db.drop_collection("c")
    except keeldb.CollectionNotFoundError:
        pass
    col = fuzz_db.create_collection("c", dim=4, metric="l2")
    col.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], [{"year": 2020}, {"year": 2021}])


open_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(fuzz_db, ServerConfig(max_body_bytes=1 << 20))
)
pinned_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", create_app(fuzz_db, ServerConfig(max_body_bytes=1 << 20))
)
pinned_schema.config.update(parameters={"ws": "default", "name": "c"})

FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _check(case: Any) -> None:
    response = case.call()
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        f"\nbody: {case.body!r}"
    )
    headers = {k.lower(): v for k, v in response.headers.items()}  # name -> [values]
    if response.status_code >= 400 and "application/json" in headers.get("content-type", [""])[0]:
        body = response.json()
        assert set(body) == {"error", "message"}, body


@open_schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_for_any_path(case: Any) -> None:
    _check(case)


@pinned_schema.parametrize()
@FUZZ_SETTINGS
def test_no_server_errors_on_a_live_collection(case: Any) -> None:
    _ensure_target()
    _check(case)
