"""Qdrant client's local mode: ``QdrantClient(path=...)``, no server.

Local mode is a pure-Python re-implementation of the Qdrant API that persists points to
SQLite and searches by exact (brute-force) scan: it has no HNSW index, so the collection's
``hnsw_config`` (m=16, ef_construct=200, set anyway) and the search-time ``hnsw_ef`` do
nothing, there is no ef sweep, and recall is that of an exact search.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Adapter, FilterCase, fsync_tree, main  # noqa: E402

M, EF_CONSTRUCTION = 16, 200
NAME = "docs"


class QdrantLocal(Adapter):
    system = "qdrant-local"
    packages = ("qdrant-client",)
    supports_ef = False

    def __init__(self) -> None:
        self.client: Any = None

    def import_lib(self) -> None:
        global QdrantClient, models
        from qdrant_client import QdrantClient, models

    def params(self) -> dict[str, Any]:
        return {
            "client": "QdrantClient(path=...) local mode",
            "index": "none (exact scan)",
            "hnsw_config (ignored in local mode)": {"m": M, "ef_construct": EF_CONSTRUCTION},
            "distance": "Cosine",
        }

    def notes(self) -> list[str]:
        return [
            "durable = every file of the store fsynced after the last batch",
            "local mode has no HNSW index: exact brute-force search, no ef sweep",
            "'indexed' = acknowledged (nothing to build)",
        ]

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        self.store = path
        self.client = QdrantClient(path=path)
        self.client.create_collection(
            NAME,
            vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
            hnsw_config=models.HnswConfigDiff(m=M, ef_construct=EF_CONSTRUCTION),
        )

    def make_durable(self) -> None:
        # The ingest case runs until the data is durable: after the last batch every
        # file of the store is fsynced (as for raw faiss and hnswlib), whatever the
        # system's own default promises.
        fsync_tree(self.store)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        self.client.upsert(
            NAME, points=models.Batch(ids=ids.tolist(), vectors=vectors.tolist(), payloads=metas)
        )

    def search(self, q: np.ndarray, k: int) -> list[int]:
        res = self.client.query_points(NAME, query=q, limit=k, with_payload=True)
        return [int(p.id) for p in res.points]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        reqs = [models.QueryRequest(query=q.tolist(), limit=k, with_payload=True) for q in qs]
        res = self.client.query_batch_points(NAME, requests=reqs)
        return [[int(p.id) for p in r.points] for r in res]

    def translate_filter(self, case: FilterCase) -> Any:
        f, op = case.spec["field"], case.spec["op"]
        if op == "eq":
            match = models.MatchValue(value=case.spec["value"])
            return models.Filter(must=[models.FieldCondition(key=f, match=match)])
        if op == "in":
            match = models.MatchAny(any=list(case.spec["value"]))
            return models.Filter(must=[models.FieldCondition(key=f, match=match)])
        if op == "is_not_null":
            cond = models.IsNullCondition(is_null=models.PayloadField(key=f))
            return models.Filter(must_not=[cond])
        raise NotImplementedError(op)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        res = self.client.query_points(NAME, query=q, limit=k, query_filter=flt, with_payload=True)
        return [int(p.id) for p in res.points]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def open(self, path: str, dim: int) -> None:
        self.client = QdrantClient(path=path)


if __name__ == "__main__":
    sys.exit(main(QdrantLocal()))
