"""Helpers shared by the server tests (a uniquely named module, imported directly)."""

from __future__ import annotations

from typing import Any

COL = "/v1/workspaces/default/collections"


def create(api: Any, name: str = "c", dim: int = 4, **params: Any) -> dict[str, Any]:
    """Create a collection through the API and return its info."""
    resp = api.put(f"{COL}/{name}", json={"dim": dim, **params})
    assert resp.status_code == 200, resp.text
    info: dict[str, Any] = resp.json()
    return info


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    """Check an error answer's status and {"error", "message"} shape; return the body."""
    assert resp.status_code == status, (resp.status_code, resp.text)
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error", "message"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return body
