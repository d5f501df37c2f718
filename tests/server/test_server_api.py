"""Every route of the HTTP API, in process (TestClient), against the real engine."""

from __future__ import annotations

from typing import Any

import numpy as np
from server_util import COL, assert_error, create

from keeldb.protocol import wire


def _upsert(api: Any, name: str = "c", n: int = 5, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    body = {
        "ids": [f"r{i}" for i in range(n)],
        "vectors": vectors.tolist(),
        "metadata": [{"i": i, "even": i % 2 == 0} for i in range(n)],
    }
    resp = api.post(f"{COL}/{name}/upsert", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"upserted": n}
    return vectors


def test_healthz_openapi_and_docs_are_served(api: Any) -> None:
    assert api.get("/healthz").json()["status"] == "ok"
    schema = api.get("/openapi.json").json()
    paths = schema["paths"]
    for action in (
        "upsert",
        "get",
        "delete",
        "count",
        "search",
        "search_batch",
        "scan",
        "compact",
        "flush",
    ):
        assert "post" in paths[f"/v1/workspaces/{{ws}}/collections/{{name}}/{action}"]
    assert set(paths["/v1/workspaces/{ws}/collections/{name}"]) == {"put", "get", "delete"}
    assert "get" in paths["/v1/workspaces/{ws}/collections/{name}/stats"]
    assert "get" in paths["/v1/workspaces/{ws}/collections"]
    assert api.get("/docs").status_code == 200
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert paths["/v1/workspaces/{ws}/collections/{name}/search"]["post"]["security"]
    assert "security" not in paths["/healthz"]["get"]


def test_collection_lifecycle(api: Any) -> None:
    info = create(api, "c", dim=4, metric="l2", m=8, ef_construction=50, ef_search=20)
    assert (info["name"], info["workspace"], info["dim"], info["metric"]) == (
        "c",
        "default",
        4,
        "l2",
    )
    assert (info["m"], info["ef_construction"], info["ef_search"]) == (8, 50, 20)
    assert api.get(f"{COL}/c").json()["name"] == "c"
    assert_error(api.put(f"{COL}/c", json={"dim": 4, "metric": "l2"}), 409, "already_exists")
    again = api.put(
        f"{COL}/c",
        json={
            "dim": 4,
            "metric": "l2",
            "m": 8,
            "ef_construction": 50,
            "ef_search": 20,
            "exist_ok": True,
        },
    )
    assert again.status_code == 200, again.text
    api.put("/v1/workspaces/other/collections/d", json={"dim": 3}).raise_for_status()
    names = [c["name"] for c in api.get(f"{COL}").json()["collections"]]
    assert names == ["c"]
    assert sorted(api.get("/v1/workspaces").json()["workspaces"]) == ["default", "other"]
    everything = api.get("/v1/collections").json()["collections"]
    assert sorted((c["workspace"], c["name"]) for c in everything) == [
        ("default", "c"),
        ("other", "d"),
    ]
    assert api.delete(f"{COL}/c").json() == {"dropped": True}
    assert_error(api.get(f"{COL}/c"), 404, "collection_not_found")
    assert_error(api.delete(f"{COL}/c"), 404, "collection_not_found")


def test_upsert_get_count_delete(api: Any) -> None:
    create(api, dim=4, metric="l2")
    vectors = _upsert(api)
    got = api.post(f"{COL}/c/get", json={"ids": ["r1", "nope", "r3"]}).json()["records"]
    assert got[1] is None
    assert got[0]["id"] == "r1" and got[0]["metadata"] == {"i": 1, "even": False}
    np.testing.assert_allclose(got[0]["vector"], vectors[1], rtol=1e-6)
    b64 = api.post(f"{COL}/c/get", json={"ids": ["r3"], "vector_encoding": "base64"}).json()
    np.testing.assert_array_equal(wire.decode_vector(b64["records"][0]["vector"]), vectors[3])
    assert api.post(f"{COL}/c/count").json() == {"count": 5}
    assert api.post(f"{COL}/c/count", json={"filter": {"even": True}}).json() == {"count": 3}
    assert api.post(f"{COL}/c/delete", json={"ids": ["r0", "zz"]}).json() == {"deleted": 1}
    assert api.post(f"{COL}/c/delete", json={"filter": {"i": {"$gte": 3}}}).json() == {"deleted": 2}
    assert api.post(f"{COL}/c/count", json={}).json() == {"count": 2}
    assert_error(api.post(f"{COL}/c/delete", json={}), 400, "invalid_argument")


def test_upsert_accepts_base64_vectors(api: Any) -> None:
    create(api, dim=3, metric="l2")
    vectors = np.arange(6, dtype=np.float32).reshape(2, 3) + 0.25
    body = {"ids": ["a", "b"], "vectors": wire.encode_array(vectors)}
    assert api.post(f"{COL}/c/upsert", json=body).status_code == 200
    got = api.post(f"{COL}/c/get", json={"ids": ["b"]}).json()["records"][0]
    assert got["vector"] == vectors[1].tolist()


def test_search_and_search_batch(api: Any) -> None:
    create(api, dim=4, metric="l2")
    vectors = _upsert(api, n=20)
    hits = api.post(f"{COL}/c/search", json={"vector": vectors[7].tolist(), "k": 3}).json()["hits"]
    assert len(hits) == 3 and hits[0]["id"] == "r7" and hits[0]["distance"] < 1e-5
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    b64 = {"vector": wire.encode_array(vectors[7]), "k": 3, "ef": 32}
    assert api.post(f"{COL}/c/search", json=b64).json()["hits"] == hits
    filtered = api.post(
        f"{COL}/c/search", json={"vector": vectors[7].tolist(), "k": 5, "filter": {"even": True}}
    ).json()["hits"]
    assert len(filtered) == 5 and all(h["metadata"]["even"] for h in filtered)
    batch = api.post(
        f"{COL}/c/search_batch", json={"vectors": wire.encode_array(vectors[:4]), "k": 2}
    ).json()["results"]
    assert [r[0]["id"] for r in batch] == ["r0", "r1", "r2", "r3"]


def test_scan_pages_through_everything(api: Any) -> None:
    create(api, dim=4)
    _upsert(api, n=25)
    seen: list[str] = []
    cursor = None
    while True:
        page = api.post(f"{COL}/c/scan", json={"limit": 10, "cursor": cursor}).json()
        seen += [r["id"] for r in page["records"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"r{i}" for i in range(25))
    even = api.post(f"{COL}/c/scan", json={"filter": {"even": True}, "limit": 100}).json()
    assert len(even["records"]) == 13 and even["next_cursor"] is None
    assert len(api.post(f"{COL}/c/scan").json()["records"]) == 25


def test_stats_compact_flush(api: Any) -> None:
    create(api, dim=4)
    _upsert(api, n=10)
    api.post(f"{COL}/c/delete", json={"ids": ["r1", "r2"]}).raise_for_status()
    assert api.post(f"{COL}/c/flush").json() == {"ok": True}
    stats = api.get(f"{COL}/c/stats").json()
    assert stats["live_count"] == 8 and stats["name"] == "c"
    assert {"segments", "wal_bytes", "disk_bytes", "memory_bytes"} <= set(stats)
    wire.stats_from_wire(stats)  # the client can rebuild it
    report = api.post(f"{COL}/c/compact").json()
    assert set(report) == {
        "segments_before",
        "segments_after",
        "rows_removed",
        "rows_indexed",
        "duration_s",
    }
    assert api.post(f"{COL}/c/count").json() == {"count": 8}


def test_metrics_report_requests_collections_and_wal(api: Any) -> None:
    create(api, dim=4)
    _upsert(api, n=3)
    api.post(f"{COL}/c/count")
    text = api.get("/metrics").text
    assert (
        'keeldb_http_requests_total{method="POST",route="/v1/workspaces/{ws}/collections/'
        '{name}/upsert",status="200"} 1' in text
    )
    assert "keeldb_http_request_duration_seconds_bucket" in text
    assert 'keeldb_collection_records{workspace="default",collection="c"} 3' in text
    assert "keeldb_wal_bytes " in text
    # Raw paths never become labels: an unknown route is counted as "unmatched".
    api.get("/v1/../../etc/passwd")
    assert "passwd" not in api.get("/metrics").text
