"""Errors: one handler maps the whole tree; bad input of any kind is a 4xx, never a 500."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from fastapi import FastAPI
from server_util import COL, assert_error, create

from keeldb.errors import error_classes
from keeldb.server.handlers import install_handlers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.mark.parametrize("code", sorted(error_classes()))
def test_every_error_class_maps_to_its_status_and_code(code: str) -> None:
    cls = error_classes()[code]
    app = FastAPI()
    install_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise cls("it broke")

    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/boom")
    assert resp.status_code == cls.status
    assert resp.json() == {"error": code, "message": "it broke"}
    if cls.status == 401:
        assert resp.headers["www-authenticate"] == "Bearer"


def test_unexpected_exception_is_an_opaque_500() -> None:
    app = FastAPI()
    install_handlers(app)

    @app.get("/bug")
    def bug() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_error(client.get("/bug"), 500, "internal")
    assert "secret" not in body["message"]


BAD_BODIES: list[tuple[str, Any]] = [
    ("search", {"vector": "not a vector"}),
    ("search", {"vector": [1, 2, 3, 4], "k": "ten"}),
    ("search", {"vector": [1, 2, 3, 4], "k": 0}),
    ("search", {"vector": [1, 2, 3, 4], "k": -5}),
    ("search", {"vector": [1, 2, 3, 4], "ef": 0}),
    # exact is a JSON boolean, nothing else (review: "yes", 1 and "on" were read as True)
    ("search", {"vector": [1, 2, 3, 4], "exact": "yes"}),
    ("search", {"vector": [1, 2, 3, 4], "exact": 1}),
    ("search_batch", {"vectors": [[1, 2, 3, 4]], "exact": "true"}),
    ("search", {"vector": [1, 2, 3, 4], "exact": True, "ef": 10}),
    ("search", {"vector": [1, 2, 3, 4], "with_metadata": 0}),
    ("search_batch", {"vectors": [[1, 2, 3, 4]], "with_metadata": "false"}),
    ("search", {"vector": [1, 2, 3, 4], "with_metadata": None}),
    ("search", {"vector": []}),
    ("search", {"vector": [[1, 2], [3]]}),
    ("search", {"vector": [1, 2, 3]}),
    ("search", {"vector": [1, 2, 3, 4], "filter": "year > 3"}),
    ("search", {"vector": [1, 2, 3, 4], "filter": {"$bogus": 1}}),
    ("search", {"vector": [1, 2, 3, 4], "kk": 3}),
    ("search", {"vector": {"shape": [4], "data": "!!notbase64"}}),
    ("search", {"vector": {"shape": [5], "data": "AAAAAAAAAAAAAAAAAAAAAA=="}}),
    ("search", {"vector": {"shape": [4], "data": "AAAA", "dtype": "float64"}}),
    ("search", {"vector": {"shape": [-1], "data": ""}}),
    # sizes past int64 (found by schemathesis: numpy's prod overflowed into a 500)
    ("search", {"vector": {"shape": [2**70], "data": ""}}),
    ("search_batch", {"vectors": {"shape": [2**40, 2**40], "data": "AAAA"}}),
    ("upsert", {"ids": ["a"], "vectors": {"shape": [1, 2**64], "data": ""}}),
    ("search", {}),
    ("search", []),
    ("search", None),
    ("search_batch", {"vectors": [1, 2, 3, 4]}),
    ("search_batch", {"vectors": [[1, 2, 3, 4]], "k": 1.5}),
    ("upsert", {"ids": ["a"], "vectors": [[1, 2, 3, 4], [1, 2, 3, 4]]}),
    ("upsert", {"ids": [1], "vectors": [[1, 2, 3, 4]]}),
    ("upsert", {"ids": ["a"], "vectors": [[1, 2, 3]]}),
    ("upsert", {"ids": ["a"], "vectors": [[1, 2, 3, 4]], "metadata": [1]}),
    ("upsert", {"ids": ["a"], "vectors": [[1, 2, 3, 4]], "metadata": [{}, {}]}),
    ("upsert", {"ids": [""], "vectors": [[1, 2, 3, 4]]}),
    ("upsert", {"ids": ["a"], "vectors": [["x", 2, 3, 4]]}),
    ("upsert", {"ids": ["a"], "vectors": [[1e39, 2, 3, 4]]}),
    ("get", {"ids": "a"}),
    ("get", {"ids": ["a"], "vector_encoding": "hex"}),
    ("delete", {"ids": None, "filter": None}),
    ("count", {"filter": 7}),
    ("scan", {"limit": 0}),
    ("scan", {"limit": "many"}),
    ("scan", {"cursor": 17}),
]


@pytest.mark.parametrize(("action", "body"), BAD_BODIES)
def test_bad_bodies_are_400_invalid_argument(api: Any, action: str, body: Any) -> None:
    create(api, dim=4, metric="l2")
    resp = api.post(f"{COL}/c/{action}", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] in {"invalid_argument", "dimension_mismatch"}


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"vector": [1, 2, 3, 4]',
        b"\xff\xfe\x00",
        b"",
        b"[]",
        b"NaN",
        b'{"vector": [NaN, 1, 2, 3]}',
        b'{"vector": [Infinity, 1, 2, 3]}',
    ],
)
def test_malformed_json_is_400(api: Any, raw: bytes) -> None:
    create(api, dim=4)
    resp = api.post(f"{COL}/c/search", content=raw, headers={"content-type": "application/json"})
    assert_error(resp, 400, "invalid_argument")


def test_bad_collection_parameters_are_400(api: Any) -> None:
    assert_error(api.put(f"{COL}/c", json={"dim": 0}), 400, "invalid_argument")
    assert_error(api.put(f"{COL}/c", json={"dim": 4, "metric": "hamming"}), 400, "invalid_argument")
    assert_error(api.put(f"{COL}/c", json={"dim": "four"}), 400, "invalid_argument")
    assert_error(api.put(f"{COL}/c", json={"dim": 4, "colour": "red"}), 400, "invalid_argument")


def test_unknown_route_and_method(api: Any) -> None:
    assert_error(api.get("/v2/nothing"), 404, "not_found")
    assert_error(api.patch(f"{COL}/c"), 405, "method_not_allowed")


def test_missing_collection_is_404_for_every_action(api: Any) -> None:
    for action in ("get", "delete", "count", "search", "search_batch", "scan", "upsert"):
        body = {"ids": ["a"], "vectors": [[1.0]], "vector": [1.0], "filter": {"a": 1}}
        fields = {
            "get": ["ids"],
            "delete": ["ids"],
            "count": [],
            "search": ["vector"],
            "search_batch": [],
            "scan": [],
            "upsert": ["ids", "vectors"],
        }[action]
        payload = {k: body[k] for k in fields}
        if action == "search_batch":
            payload = {"vectors": [[1.0]]}
        resp = api.post(f"{COL}/missing/{action}", json=payload)
        assert_error(resp, 404, "collection_not_found")
    assert_error(api.post(f"{COL}/missing/compact"), 404, "collection_not_found")
    assert_error(api.get(f"{COL}/missing/stats"), 404, "collection_not_found")


def test_encoded_shape_whose_size_wraps_int64_is_400(api: Any) -> None:
    """2**32 x 2**32 floats wrap to 0 bytes in int64 arithmetic: with empty data that
    passed the size check (only the later reshape refused it). Sizes are exact now."""
    create(api, dim=4, metric="l2")
    body = {"vectors": {"shape": [2**32, 2**32], "data": ""}}
    resp = api.post(f"{COL}/c/search_batch", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_argument"


@pytest.mark.parametrize("limit", [10**7, 2**63, 10**30])
def test_scan_limit_past_the_batch_limit_is_413_at_any_size(api: Any, limit: int) -> None:
    """Regression (found by the schemathesis fuzz): a limit past a C ssize_t overflowed
    the batch-size check and answered 500."""
    create(api, dim=4, metric="l2")
    assert_error(api.post(f"{COL}/c/scan", json={"limit": limit}), 413, "payload_too_large")
