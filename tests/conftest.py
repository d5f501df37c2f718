"""Shared fixtures: temporary databases, the shipped real-embedding sample, env hygiene."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

import keeldb

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "data"


@pytest.fixture(autouse=True)
def _no_env_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the environment from leaking into (or between) tests."""
    monkeypatch.delenv("KEELDB_API_KEY", raising=False)


@pytest.fixture(autouse=True)
def _fresh_plan_prices() -> None:
    """Each test starts from the planner's reference prices: prices learned from an
    earlier test's searches must not change which plan a later test sees."""
    from keeldb.engine.planner import PLAN_COSTS

    PLAN_COSTS.reset()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "db")


@pytest.fixture
def db(db_path: str) -> Iterator[keeldb.Database]:
    database = keeldb.open(db_path)
    try:
        yield database
    finally:
        database.close()


@pytest.fixture(scope="session")
def sample() -> dict[str, object]:
    """The 3,000-row real sample: vectors (float32, unit), metadata, 200 queries."""
    z = np.load(SAMPLE_DIR / "pypi_sample.npz")
    with gzip.open(SAMPLE_DIR / "pypi_sample_meta.jsonl.gz", "rt") as f:
        meta = [json.loads(line) for line in f]
    vectors = z["vectors"].astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = z["queries"].astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return {"vectors": vectors, "meta": meta, "queries": queries}


def random_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _brute_distances(base: np.ndarray, q: np.ndarray, metric: str) -> np.ndarray:
    """KeelDB distances from ``q`` to every row of ``base``, by plain numpy."""
    if metric == "cosine":
        b = base / np.linalg.norm(base, axis=1, keepdims=True)
        return np.asarray(1.0 - b @ (q / np.linalg.norm(q)))
    if metric == "ip":
        return np.asarray(-(base @ q))
    return np.asarray(np.sqrt(((base - q) ** 2).sum(axis=1)))


@pytest.fixture
def brute() -> Callable[[np.ndarray, np.ndarray, str], np.ndarray]:
    """The brute-force oracle: ``brute(base, q, metric)`` -> distances to every row."""
    return _brute_distances
