"""Issue 17, items 3 and 9: create_collection's body over HTTP, and 403 messages."""

from __future__ import annotations

from typing import Any

import pytest
from server_util import COL, assert_error

from keeldb.server.config import ADMIN, READ_ONLY, READ_WRITE, ApiKey

RO_KEY = "ro-key-00000003"
RW_KEY = "rw-key-00000002"
SCOPED_KEY = "scoped-key-0004"


def test_create_without_dim_is_refused_and_creates_nothing(api: Any) -> None:
    # Issue 17 item 3: `{}` created a 384-d collection (OpenAPI "default: 384").
    body = assert_error(api.put(f"{COL}/y", json={}), 400, "invalid_argument")
    assert "dim" in body["message"]
    assert api.get("/v1/collections").json() == {"collections": []}


@pytest.mark.parametrize(
    "field, value",
    [
        ("dim", "3"),
        ("dim", 3.0),
        ("dim", True),
        ("m", "16"),
        ("ef_construction", "200"),
        ("ef_search", 64.5),
        ("exist_ok", "yes"),
        ("exist_ok", 1),
    ],
)
def test_create_refuses_values_of_the_wrong_json_type(api: Any, field: str, value: Any) -> None:
    # Issue 17 item 3: `"dim": "3"` was accepted (coerced).
    body = {"dim": 3, field: value}
    message = assert_error(api.put(f"{COL}/y", json=body), 400, "invalid_argument")["message"]
    assert field in message
    assert api.get("/v1/collections").json() == {"collections": []}


def test_dim_is_an_integer_required_unless_an_embedding_function_gives_it(api: Any) -> None:
    # Issue 14: dim may be omitted when an embedding function is named (it has a dim);
    # without one, leaving it out is a 400 (never a default dimension).
    schema = api.get("/openapi.json").json()["components"]["schemas"]["CreateCollectionRequest"]
    types = {t.get("type") for t in schema["properties"]["dim"]["anyOf"]}
    assert types == {"integer", "null"}
    assert "required unless embedding" in schema["properties"]["dim"]["description"]
    message = assert_error(api.put(f"{COL}/y", json={}), 400, "invalid_argument")["message"]
    assert "needs dim" in message
    assert api.get("/v1/collections").json() == {"collections": []}


def test_a_403_says_in_words_what_the_key_may_not_do(make_api: Any) -> None:
    # Issue 17 item 9: the message read "this key (read-write) may not admin".
    api = make_api(
        keys=[
            ApiKey("admin-key-0001", ADMIN),
            ApiKey(RW_KEY, READ_WRITE),
            ApiKey(RO_KEY, READ_ONLY),
            ApiKey(SCOPED_KEY, READ_WRITE, frozenset({"team"})),
        ]
    )
    admin = {"Authorization": "Bearer admin-key-0001"}
    assert api.put(f"{COL}/c", json={"dim": 2}, headers=admin).status_code == 200

    rw = {"Authorization": f"Bearer {RW_KEY}"}
    msg = assert_error(api.get("/metrics", headers=rw), 403, "permission_denied")["message"]
    assert "may not admin" not in msg
    assert msg == (
        "this API key has the read-write role, which does not allow server administration "
        "(an admin key is needed)"
    )
    ro = {"Authorization": f"Bearer {RO_KEY}"}
    resp = api.post(f"{COL}/c/upsert", json={"ids": ["a"], "vectors": [[1, 0]]}, headers=ro)
    msg = assert_error(resp, 403, "permission_denied")["message"]
    assert msg == (
        "this API key has the read-only role, which does not allow changing data "
        "in workspace 'default' (a read-write or admin key is needed)"
    )
    sc = {"Authorization": f"Bearer {SCOPED_KEY}"}
    msg = assert_error(api.post(f"{COL}/c/count", headers=sc), 403, "permission_denied")["message"]
    assert msg == "this API key may only use the workspaces 'team', not 'default'"


def test_create_with_quantization_over_http(api: Any) -> None:
    # Issue 16: the quantization option crosses HTTP, is reported, and exist_ok compares it.
    resp = api.put(f"{COL}/q", json={"dim": 3, "metric": "l2", "quantization": "sq8"})
    assert resp.status_code in (200, 201), resp.text
    assert resp.json()["quantization"] == "sq8"
    assert api.get(f"{COL}/q").json()["quantization"] == "sq8"
    again = api.put(f"{COL}/q", json={"dim": 3, "metric": "l2", "exist_ok": True})
    assert_error(again, 409, "already_exists")
    default = api.put(f"{COL}/d", json={"dim": 3})
    assert default.json()["quantization"] == "fp16"  # cosine's default
    assert_error(
        api.put(f"{COL}/z", json={"dim": 3, "quantization": "pq"}), 400, "invalid_argument"
    )
