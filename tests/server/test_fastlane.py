"""The fast lane (keeldb/server/fastlane.py) answers exactly as the full ASGI stack.

Configuring CORS origins turns the lane off, so the same requests are sent to an app
with the lane and to one without, and every answer (status, JSON body) must agree; the
metrics must count lane requests under their route template.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from keeldb.protocol import wire
from keeldb.server.config import ADMIN, READ_ONLY, ApiKey

ADMIN_KEY = "admin-key-0001"
RO_KEY = "ro-key-00000003"
SCOPED_KEY = "scoped-key-0004"
KEYS = [
    ApiKey(ADMIN_KEY, ADMIN),
    ApiKey(RO_KEY, READ_ONLY),
    ApiKey(SCOPED_KEY, ADMIN, frozenset({"team"})),
]
COL = "/v1/workspaces/default/collections/c"


def _auth(key: str | None) -> dict[str, str]:
    return {} if key is None else {"Authorization": f"Bearer {key}"}


def _vec(values: list[float]) -> dict[str, Any]:
    return wire.encode_array(np.asarray(values, dtype=np.float32))


# (method, path, key, body: JSON value or raw bytes, extra headers)
CASES: list[tuple[str, str, str | None, Any, dict[str, str]]] = [
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0], "k": 2}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": _vec([0, 1, 0, 0]), "k": 3}, {}),
    ("POST", f"{COL}/search", RO_KEY, {"vector": [1, 0, 0, 0], "filter": {"i": {"$gt": 0}}}, {}),
    ("POST", f"{COL}/search_batch", ADMIN_KEY, {"vectors": [[1, 0, 0, 0], [0, 0, 1, 0]]}, {}),
    ("POST", f"{COL}/count", ADMIN_KEY, None, {}),
    ("POST", f"{COL}/count", ADMIN_KEY, {"filter": {"i": 1}}, {}),
    ("POST", f"{COL}/get", ADMIN_KEY, {"ids": ["a", "zz"]}, {}),
    ("POST", f"{COL}/scan", ADMIN_KEY, {"limit": 2}, {}),
    ("POST", f"{COL}/text_search", RO_KEY, {"query": "brown fox", "k": 2}, {}),
    ("POST", f"{COL}/text_search", ADMIN_KEY, {"query": "fox", "filter": {"i": {"$gt": 1}}}, {}),
    ("POST", f"{COL}/hybrid_search", ADMIN_KEY, {"query": "fox", "vector": [1, 0, 0, 0]}, {}),
    ("POST", f"{COL}/hybrid_search", ADMIN_KEY, {"query": "fox"}, {}),
    ("POST", f"{COL}/text_search", ADMIN_KEY, {"query": 3}, {}),
    # errors: auth, validation, engine, limits, routing
    ("POST", f"{COL}/search", None, {"vector": [1, 0, 0, 0]}, {}),
    ("POST", f"{COL}/search", "wrong-key-000000", {"vector": [1, 0, 0, 0]}, {}),
    ("POST", f"{COL}/upsert", RO_KEY, {"ids": ["x"], "vectors": [[1, 1, 1, 1]]}, {}),
    ("POST", f"{COL}/search", SCOPED_KEY, {"vector": [1, 0, 0, 0]}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, b'{"vector": [1, 0, 0, 0], "k": ', {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0], "k": "ten"}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0], "bogus": 1}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0], "k": 5000}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0]}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0], "filter": {"$bad": 1}}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, b"", {}),
    ("POST", "/v1/workspaces/default/collections/nope/search", ADMIN_KEY, {"vector": [1]}, {}),
    ("POST", f"{COL}/upsert", ADMIN_KEY, {"ids": ["y"], "vectors": [[1, 2, 3, 4]]}, {}),
    ("POST", f"{COL}/delete", ADMIN_KEY, {"ids": ["y"]}, {}),
    ("POST", f"{COL}/update", ADMIN_KEY, {"ids": ["a", "zz"], "metadata": [{"j": 1}, {}]}, {}),
    ("POST", f"{COL}/update", ADMIN_KEY, {"ids": ["a"], "metadata": [{}], "mode": "x"}, {}),
    (
        "POST",
        f"{COL}/transaction",
        ADMIN_KEY,
        {
            "ops": [
                {"op": "upsert", "ids": ["t"], "vectors": [[0, 1, 1, 0]]},
                {"op": "delete", "ids": ["t"]},
            ]
        },
        {},
    ),
    ("POST", f"{COL}/transaction", ADMIN_KEY, {"ops": [{"op": "delete", "ids": [""]}]}, {}),
    ("POST", f"{COL}/transaction", RO_KEY, {"ops": []}, {}),
    ("POST", f"{COL}/nosuchop", ADMIN_KEY, {}, {}),
    ("POST", f"{COL}/search", ADMIN_KEY, {"vector": [1, 0, 0, 0]}, {"Content-Length": "99999999"}),
]


@pytest.fixture
def apis(make_api: Any) -> tuple[Any, Any]:
    lane = make_api(keys=KEYS, max_body_bytes=4096)
    stack = make_api(keys=KEYS, max_body_bytes=4096, cors_origins=["http://example.org"])
    resp = lane.put(COL, json={"dim": 4}, headers=_auth(ADMIN_KEY))
    assert resp.status_code == 200, resp.text
    ids = ["a", "b", "c", "d"]
    resp = lane.post(
        f"{COL}/upsert",
        json={
            "ids": ids,
            "vectors": np.eye(4).tolist(),
            "metadata": [{"i": i} for i in range(4)],
            "documents": ["a brown fox", "a fox", None, "the fox and the dog"],
        },
        headers=_auth(ADMIN_KEY),
    )
    assert resp.status_code == 200, resp.text
    return lane, stack


def _send(api: Any, case: tuple[str, str, str | None, Any, dict[str, str]]) -> Any:
    method, path, key, body, extra = case
    headers = {**_auth(key), "Content-Type": "application/json", **extra}
    content = body if isinstance(body, bytes) else (b"" if body is None else None)
    if content is None:
        return api.request(method, path, json=body, headers=headers)
    return api.request(method, path, content=content, headers=headers)


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c[1].rsplit('/', 1)[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_lane_answers_as_the_full_stack(apis: tuple[Any, Any], case: Any) -> None:
    lane, stack = apis
    a, b = _send(lane, case), _send(stack, case)
    assert a.status_code == b.status_code, (a.text, b.text)
    assert a.json() == b.json()
    assert a.status_code != 500
    assert a.headers["content-type"] == b.headers["content-type"] == "application/json"


def test_large_streamed_body_is_refused_by_the_lane(apis: tuple[Any, Any]) -> None:
    lane, _ = apis
    big = b'{"vector": [' + b"0," * 4000 + b'1], "k": 1}'

    def chunks() -> Any:
        yield big[:2000]
        yield big[2000:]

    resp = lane.post(
        f"{COL}/search",
        content=chunks(),
        headers={**_auth(ADMIN_KEY), "Content-Type": "application/json"},
    )
    assert resp.status_code == 413
    assert resp.json()["error"] == "payload_too_large"


def test_lane_requests_are_counted_by_route_template(apis: tuple[Any, Any]) -> None:
    lane, _ = apis
    for _ in range(3):
        lane.post(f"{COL}/search", json={"vector": [1, 0, 0, 0]}, headers=_auth(ADMIN_KEY))
    lane.post(f"{COL}/search", json={"vector": [1, 0]}, headers=_auth(ADMIN_KEY))
    text = lane.get("/metrics", headers=_auth(ADMIN_KEY)).text
    template = "/v1/workspaces/{ws}/collections/{name}/search"
    ok = f'keeldb_http_requests_total{{method="POST",route="{template}",status="200"}} 3'
    bad = f'keeldb_http_requests_total{{method="POST",route="{template}",status="400"}} 1'
    assert ok in text and bad in text, text


def test_the_lane_serves_collection_posts_only_without_cors(
    apis: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from keeldb.server.fastlane import FastLane

    served: list[str] = []
    serve = FastLane._serve

    async def counting(self: Any, route: Any, *args: Any) -> None:
        served.append(route.template)
        await serve(self, route, *args)

    monkeypatch.setattr(FastLane, "_serve", counting)
    lane, stack = apis
    body = {"vector": [1, 0, 0, 0]}
    assert lane.post(f"{COL}/search", json=body, headers=_auth(ADMIN_KEY)).status_code == 200
    assert served == ["/v1/workspaces/{ws}/collections/{name}/search"]
    assert stack.post(f"{COL}/search", json=body, headers=_auth(ADMIN_KEY)).status_code == 200
    assert lane.get(f"{COL}/stats", headers=_auth(ADMIN_KEY)).status_code == 200
    assert len(served) == 1


def test_only_the_first_authorization_header_counts(apis: tuple[Any, Any]) -> None:
    """Review finding: the lane took the last of two Authorization headers, the full stack
    the first; a workspace-scoped key followed by an admin key got 200 from the lane."""
    lane, stack = apis
    headers = [
        ("Authorization", f"Bearer {SCOPED_KEY}"),
        ("Authorization", f"Bearer {ADMIN_KEY}"),
        ("Content-Type", "application/json"),
    ]
    body = b'{"vector": [1, 0, 0, 0]}'
    a = lane.post(f"{COL}/search", content=body, headers=headers)
    b = stack.post(f"{COL}/search", content=body, headers=headers)
    assert a.status_code == b.status_code == 403, (a.text, b.text)


def test_lane_requests_count_as_in_flight(apis: tuple[Any, Any]) -> None:
    """Review finding: the lane never counted its requests in the in-flight gauge."""
    lane, _ = apis
    state = lane.app.state.keeldb
    seen: list[int] = []
    state.db.get_collection("c").on_search(lambda stats: seen.append(state.metrics.in_flight))
    lane.post(f"{COL}/search", json={"vector": [1, 0, 0, 0]}, headers=_auth(ADMIN_KEY))
    assert seen == [1]
    assert state.metrics.in_flight == 0
