"""The dashboard's server side without a browser: pages and assets, security headers,
``/v1/whoami``, ``.../explain``, and static checks on the shipped files."""

from __future__ import annotations

import fnmatch
import re
import threading
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.server import ServerConfig, create_app
from keeldb.server.config import ADMIN, READ_ONLY, READ_WRITE, ApiKey, KeyStore
from keeldb.server.dashboard import UI_DIR

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

ADMIN_KEY = "http-admin-key-1"
RO_KEY = "http-read-only-2"
TEAM_KEY = "http-team-write-3"
KEYS = [
    ApiKey(ADMIN_KEY, ADMIN),
    ApiKey(RO_KEY, READ_ONLY),
    ApiKey(TEAM_KEY, READ_WRITE, frozenset({"team"})),
]
PRODUCTS = "/v1/workspaces/default/collections/products"
REPO = Path(__file__).resolve().parents[2]


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def served(db: keeldb.Database) -> Iterator[tuple[TestClient, keeldb.Database]]:
    rng = np.random.default_rng(3)
    col = db.create_collection("products", dim=4, metric="l2")
    col.upsert(
        [f"p{i}" for i in range(30)],
        rng.normal(size=(30, 4)).astype(np.float32),
        [{"year": 2000 + i} for i in range(30)],
    )
    db.create_collection("notes", dim=4, workspace="team")
    client = TestClient(
        create_app(db, ServerConfig(keys=KeyStore(KEYS))), raise_server_exceptions=False
    )
    with client:
        yield client, db


# --- pages and assets ----------------------------------------------------------------------


def test_root_redirects_to_the_dashboard_and_pages_need_no_key(served: Any) -> None:
    api, _ = served
    resp = api.get("/", follow_redirects=False)
    assert resp.status_code == 307 and resp.headers["location"] == "/ui"
    for path in ("/ui", "/ui/", "/docs", "/redoc"):
        resp = api.get(path)
        assert resp.status_code == 200, path
        assert resp.headers["content-type"].startswith("text/html"), path
    assert 'id="signin"' in api.get("/ui").text
    js = api.get("/ui/assets/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert api.get("/ui/assets/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200
    assert api.get("/ui/assets/vendor/redoc/redoc.standalone.js").status_code == 200
    assert api.get("/ui/assets/../config.py").status_code == 404
    assert api.get("/ui/assets/nothing.js").status_code == 404


def test_every_answer_has_the_security_headers(served: Any) -> None:
    api, _ = served
    answers = {
        "page": api.get("/ui"),
        "asset": api.get("/ui/assets/app.css"),
        "docs": api.get("/docs"),
        "search (fast lane)": api.post(
            PRODUCTS + "/search", json={"vector": [0, 0, 0, 0]}, headers=h(RO_KEY)
        ),
        "info (full stack)": api.get(PRODUCTS, headers=h(RO_KEY)),
        "401": api.get("/v1/collections"),
        "403 from the fast lane": api.post(
            PRODUCTS + "/delete", json={"ids": ["p1"]}, headers=h(RO_KEY)
        ),
        "404": api.get("/nowhere"),
    }
    for what, resp in answers.items():
        headers = resp.headers
        assert headers["x-frame-options"] == "DENY", what
        assert headers["x-content-type-options"] == "nosniff", what
        assert headers["referrer-policy"] == "no-referrer", what
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, what
        assert "script-src 'self';" in csp and "unsafe-eval" not in csp, what
        assert headers.get_list("cache-control") == [
            "no-cache" if what == "asset" else "no-store"
        ], what
    assert "style-src 'self';" in answers["page"].headers["content-security-policy"]
    assert answers["search (fast lane)"].status_code == 200
    assert answers["403 from the fast lane"].status_code == 403


def test_shipped_pages_have_no_inline_script_or_style() -> None:
    # The CSP would block them anyway; this finds them before a browser does.
    pages = sorted(UI_DIR.glob("*.html"))
    assert {p.name for p in pages} == {"index.html", "docs.html", "redoc.html"}
    for page in pages:
        html = page.read_text()
        for tag in re.findall(r"<script\b[^>]*>", html):
            assert re.search(r'\bsrc="/ui/assets/[^"]+"', tag), (page.name, tag)
        assert not re.search(r"<script\b[^>]*>\s*[^<\s]", html), page.name  # no inline body
        assert not re.search(r"\sstyle=", html), page.name
        assert not re.search(r"<style\b", html), page.name
        assert not re.search(r"\son[a-z]+=", html), page.name
        assert not re.search(r"(src|href)=\"(https?:)?//", html), page.name


def test_dashboard_scripts_never_build_markup_from_strings() -> None:
    for script in ("widgets.js", "app.js", "apidocs.js"):
        source = (UI_DIR / script).read_text()
        code = "\n".join(line for line in source.splitlines() if not line.strip().startswith("//"))
        for banned in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            'setTimeout("',
            ".style.",
        ):
            assert banned not in code, (script, banned)


def test_package_data_ships_every_ui_file() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["keeldb"]
    package = UI_DIR.parent.parent  # src/keeldb
    files = [p for p in UI_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert len(files) >= 14
    for path in files:
        relative = path.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pat) for pat in patterns), relative
    for licence in ("swagger-ui/LICENSE", "swagger-ui/NOTICE", "redoc/LICENSE"):
        assert (UI_DIR / "vendor" / licence).is_file(), licence


# --- /v1/whoami ----------------------------------------------------------------------------


def test_whoami_tells_each_key_what_it_may_do(served: Any) -> None:
    api, _ = served
    assert api.get("/v1/whoami", headers=h(ADMIN_KEY)).json() == {
        "auth": True,
        "role": "admin",
        "permissions": ["read", "write", "admin"],
        "workspaces": None,
    }
    assert api.get("/v1/whoami", headers=h(RO_KEY)).json() == {
        "auth": True,
        "role": "read-only",
        "permissions": ["read"],
        "workspaces": None,
    }
    assert api.get("/v1/whoami", headers=h(TEAM_KEY)).json() == {
        "auth": True,
        "role": "read-write",
        "permissions": ["read", "write"],
        "workspaces": ["team"],
    }
    for headers in ({}, h("not-a-configured-key")):
        resp = api.get("/v1/whoami", headers=headers)
        assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"


def test_whoami_without_keys_is_full_access(db: keeldb.Database) -> None:
    with TestClient(create_app(db)) as api:
        assert api.get("/v1/whoami").json() == {
            "auth": False,
            "role": None,
            "permissions": ["read", "write", "admin"],
            "workspaces": None,
        }


def test_whoami_and_explain_are_in_the_schema(served: Any) -> None:
    api, _ = served
    paths = api.get("/openapi.json", headers=h(RO_KEY)).json()["paths"]
    assert "get" in paths["/v1/whoami"]
    assert "post" in paths["/v1/workspaces/{ws}/collections/{name}/explain"]


# --- .../explain -----------------------------------------------------------------------------


def test_explain_answers_the_searchs_hits_and_its_stats(served: Any) -> None:
    api, _ = served
    body = {"vector": [0.1, 0.2, 0.3, 0.4], "k": 5, "filter": {"year": {"$gte": 2010}}}
    plain = api.post(PRODUCTS + "/search", json=body, headers=h(RO_KEY)).json()
    resp = api.post(PRODUCTS + "/explain", json=body, headers=h(RO_KEY))
    assert resp.status_code == 200, resp.text
    explained = resp.json()
    assert explained["hits"] == plain["hits"]
    stats = explained["stats"]
    assert stats["queries"] == 1 and stats["k"] == 5 and stats["ef"] == 64
    assert stats["filtered"] is True and stats["matched_rows"] == 20
    assert stats["plans"] == {"mem": "exact-filtered"}
    assert stats["segments_searched"] == 1 and stats["latency_s"] > 0
    unfiltered = api.post(
        PRODUCTS + "/explain", json={"vector": [0, 0, 0, 1], "exact": True}, headers=h(RO_KEY)
    ).json()["stats"]
    assert unfiltered["filtered"] is False and unfiltered["matched_rows"] is None


def test_explain_reports_segment_plans(served: Any) -> None:
    api, db = served
    db.get_collection("products").compact()  # the rows move from the memtable to a segment
    stats = api.post(
        PRODUCTS + "/explain", json={"vector": [0, 0, 0, 1], "k": 3}, headers=h(RO_KEY)
    ).json()["stats"]
    assert list(stats["plans"]) and all(u.startswith("seg-") for u in stats["plans"])
    assert stats["distance_computations"] > 0


def test_explain_keeps_the_search_limits_and_key_rules(served: Any) -> None:
    api, _ = served
    too_big = api.post(
        PRODUCTS + "/explain", json={"vector": [0] * 4, "k": 5000}, headers=h(RO_KEY)
    )
    assert too_big.status_code == 400 and too_big.json()["error"] == "invalid_argument"
    wrong_dim = api.post(PRODUCTS + "/explain", json={"vector": [0, 1]}, headers=h(RO_KEY))
    assert wrong_dim.json()["error"] == "dimension_mismatch"
    assert api.post(PRODUCTS + "/explain", json={"vector": [0] * 4}).status_code == 401
    other = api.post(PRODUCTS + "/explain", json={"vector": [0] * 4}, headers=h(TEAM_KEY))
    assert other.status_code == 403
    missing = api.post(
        "/v1/workspaces/team/collections/nope/explain",
        json={"vector": [0] * 4},
        headers=h(TEAM_KEY),
    )
    assert missing.status_code == 404 and missing.json()["error"] == "collection_not_found"
    unknown = api.post(
        PRODUCTS + "/explain", json={"vector": [0] * 4, "stats": True}, headers=h(RO_KEY)
    )
    assert unknown.status_code == 400


def test_explain_leaves_no_callback_behind_and_ignores_other_searches(served: Any) -> None:
    api, db = served
    col = db.get_collection("products")
    seen: list[Any] = []
    col.on_search(seen.append)
    stop = threading.Event()

    def search_constantly() -> None:
        query = np.zeros(4, dtype=np.float32)
        while not stop.is_set():
            col.search(query, k=2)

    workers = [threading.Thread(target=search_constantly) for _ in range(2)]
    for w in workers:
        w.start()
    try:
        for k in (1, 7, 3):
            stats = api.post(
                PRODUCTS + "/explain", json={"vector": [1, 0, 0, 0], "k": k}, headers=h(RO_KEY)
            ).json()["stats"]
            assert stats["k"] == k and stats["queries"] == 1  # its own search, not another
    finally:
        stop.set()
        for w in workers:
            w.join()
    # Only our own callback is left (white-box: no public way to list callbacks).
    assert col._search_callbacks == [seen.append]
    before = len(seen)
    col.search(np.zeros(4, dtype=np.float32), k=1)
    assert len(seen) == before + 1
    col.off_search(seen.append)
    assert col._search_callbacks == []
    col.search(np.zeros(4, dtype=np.float32), k=1)
    assert len(seen) == before + 1
