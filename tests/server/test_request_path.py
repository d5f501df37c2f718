"""Both request paths (the fast lane and the full stack) answer alike, headers included.

They share one implementation of each step (keeldb/server/request.py, limits.py,
handlers.error_response_for); ``test_fastlane.py`` compares status and body, this file
the headers too, on the answers where the steps add their own: 401 (WWW-Authenticate),
413 (connection: close), 400 from parsing, and success.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keeldb.server.config import ADMIN, READ_ONLY, ApiKey

ADMIN_KEY = "admin-key-0001"
RO_KEY = "ro-key-00000003"
KEYS = [ApiKey(ADMIN_KEY, ADMIN), ApiKey(RO_KEY, READ_ONLY)]
COL = "/v1/workspaces/default/collections/c"
LIMIT = 4096
BIG = b'{"vector": [' + b"0," * 4000 + b'1], "k": 1}'


def _chunks() -> Iterator[bytes]:
    yield BIG[:2000]
    yield BIG[2000:]


@pytest.fixture
def apis(make_api: Any) -> tuple[Any, Any]:
    lane = make_api(keys=KEYS, max_body_bytes=LIMIT)
    stack = make_api(keys=KEYS, max_body_bytes=LIMIT, cors_origins=["http://example.org"])
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    assert lane.put(COL, json={"dim": 4}, headers=auth).status_code == 200
    body = {"ids": ["a", "b"], "vectors": [[1, 0, 0, 0], [0, 1, 0, 0]]}
    assert lane.post(f"{COL}/upsert", json=body, headers=auth).status_code == 200
    return lane, stack


# (name, key, body: bytes or a callable giving a fresh iterator (a streamed body))
CASES: list[tuple[str, str | None, Any]] = [
    ("ok", ADMIN_KEY, b'{"vector": [1, 0, 0, 0], "k": 1}'),
    ("no key", None, b'{"vector": [1, 0, 0, 0]}'),
    ("read-only key upserts", RO_KEY, b'{"ids": ["x"], "vectors": [[1, 1, 1, 1]]}'),
    ("malformed JSON", ADMIN_KEY, b'{"vector": [1, 0'),
    ("declared length over the limit", ADMIN_KEY, BIG),
    ("streamed body over the limit", ADMIN_KEY, _chunks),
    ("no key and a body over the limit", None, BIG),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_both_paths_answer_with_the_same_status_body_and_headers(
    apis: tuple[Any, Any], case: tuple[str, str | None, Any]
) -> None:
    name, key, body = case
    op = "upsert" if "upserts" in name else "search"
    answers = []
    for api in apis:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        content = body() if callable(body) else body
        answers.append(api.post(f"{COL}/{op}", content=content, headers=headers))
    lane, stack = answers
    assert lane.status_code == stack.status_code, (lane.text, stack.text)
    assert lane.json() == stack.json()
    # CORS (what turns the lane off for the stack app) adds its "vary: Origin".
    stack_headers = {k: v for k, v in stack.headers.items() if k != "vary"}
    assert dict(lane.headers) == stack_headers


def test_a_body_over_the_limit_is_413_and_closes_the_connection(apis: tuple[Any, Any]) -> None:
    """Declared or streamed, on either path: 413 payload_too_large, and the connection is
    closed (the rest of the body is never read)."""
    auth = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}
    for api in apis:
        for content in (BIG, _chunks()):
            resp = api.post(f"{COL}/search", content=content, headers=auth)
            assert resp.status_code == 413
            assert resp.json() == {
                "error": "payload_too_large",
                "message": f"request body is larger than the limit of {LIMIT} bytes",
            }
            assert resp.headers["connection"] == "close"


def test_an_unauthenticated_401_asks_for_a_bearer_key_on_both_paths(
    apis: tuple[Any, Any],
) -> None:
    for api in apis:
        resp = api.post(f"{COL}/search", json={"vector": [1, 0, 0, 0]})
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == "Bearer"
