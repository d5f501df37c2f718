"""Constants, the test data set and the browser lookup shared by the dashboard tests
(a uniquely named module: tests import it directly in pytest's importlib mode)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import keeldb

ARTIFACTS = Path(os.environ.get("KEELDB_UI_ARTIFACTS", Path(__file__).parent / "artifacts"))

ADMIN_KEY = "ui-admin-key-0001"
READ_ONLY_KEY = "ui-read-only-key-02"
TEAM_A_KEY = "ui-team-a-writer-03"
WRONG_KEY = "ui-not-a-key-00004"

XSS_IMG = "<img src=x onerror=alert(1)>"
XSS_SCRIPT = "<script>alert(1)</script>"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    # Nothing but the test server resolves: the pages must not need the internet.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def find_browser() -> tuple[str, str] | None:
    """(chromium binary, chromedriver) found on PATH, or None."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@dataclass
class Dataset:
    """What the test server holds, for the assertions."""

    vectors: dict[str, np.ndarray]  # default/products, by id
    metadata: dict[str, dict[str, Any]]
    counts: dict[str, int]  # "ws/name" -> rows
    documents: dict[str, str]  # default/products, by id


# One word only p13's document holds (the full-text search's expected top hit); "widget"
# is in every other product's, so it ranks nothing first.
RARE_WORD = "quasar"


def _documents(n: int) -> list[str]:
    docs = [f"Product {i}: a sturdy widget in colour number {i % 7}." for i in range(n)]
    docs[13] = f"Product 13: the {RARE_WORD} lamp, brighter than any widget."
    return [*docs, f"Markup as text: {XSS_IMG} and {XSS_SCRIPT}"]


def _products() -> tuple[list[str], np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(19)
    ids = [f"p{i:02d}" for i in range(40)]
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    metadata: list[dict[str, Any]] = [
        {"name": f"product {i}", "year": 2015 + i % 10, "tags": ["a" if i % 2 else "b"]}
        for i in range(40)
    ]
    ids.append("xss")
    vectors = np.vstack([vectors, rng.normal(size=(1, 8)).astype(np.float32)])
    metadata.append({"title": XSS_IMG, "note": XSS_SCRIPT, "year": 2020})
    return ids, vectors, metadata


def fill(url: str) -> Dataset:
    client = keeldb.Client(url, api_key=ADMIN_KEY)
    ids, vectors, metadata = _products()
    products = client.create_collection("products", dim=8, metric="l2")
    documents = _documents(len(ids) - 1)
    products.upsert(ids, vectors, metadata, documents=documents)
    notes = client.create_collection("notes", dim=4, metric="cosine", workspace="team-a")
    rng = np.random.default_rng(7)
    notes.upsert(
        [f"n{i}" for i in range(12)],
        rng.normal(size=(12, 4)).astype(np.float32),
        [{"kind": "draft" if i < 5 else "final", "i": i} for i in range(12)],
    )
    other = client.create_collection("other", dim=4, metric="ip", workspace="team-b")
    other.upsert(["o1", "o2", "o3"], rng.normal(size=(3, 4)).astype(np.float32))
    client.close()
    return Dataset(
        vectors=dict(zip(ids, vectors, strict=True)),
        metadata=dict(zip(ids, metadata, strict=True)),
        counts={"default/products": 41, "team-a/notes": 12, "team-b/other": 3},
        documents=dict(zip(ids, documents, strict=True)),
    )
