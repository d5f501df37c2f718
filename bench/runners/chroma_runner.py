"""Chroma, embedded: ``chromadb.PersistentClient(path)`` with an HNSW collection.

Parameters: ``space=cosine``, ``max_neighbors`` (Chroma's name for M) 16,
``ef_construction`` 200; ``ef_search`` is changed per sweep point with
``collection.modify``. Chroma cannot store null metadata values, so a null field is left
out of the row, and "rank is not null" becomes ``{"rank": {"$gte": -2**62}}`` (matches
every row that has an integer rank). Queries fetch ids, distances and metadata, as a
KeelDB search does.
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
INCLUDE = ["metadatas", "distances"]


class Chroma(Adapter):
    system = "chroma"
    packages = ("chromadb",)

    def __init__(self) -> None:
        self.client: Any = None
        self.col: Any = None
        self.path = ""
        self.dim = 0

    def import_lib(self) -> None:
        global chromadb
        import chromadb

    def params(self) -> dict[str, Any]:
        return {
            "client": "PersistentClient",
            "index": "HNSW (Chroma's hnswlib fork)",
            "max_neighbors (m)": M,
            "ef_construction": EF_CONSTRUCTION,
            "space": "cosine",
        }

    def notes(self) -> list[str]:
        return [
            "durable = every file of the store fsynced after the last batch",
            "null metadata values are omitted (Chroma stores no nulls); 'rank is not "
            "null' is translated to rank >= -2**62",
            "'indexed' = the first query after the last add returned (Chroma indexes "
            "on its own schedule; there is no wait-for-index call)",
        ]

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        self.path, self.dim = path, dim
        self.store = path
        self.client = chromadb.PersistentClient(path=path)
        self.col = self.client.create_collection(
            NAME,
            embedding_function=None,
            configuration={
                "hnsw": {"space": "cosine", "max_neighbors": M, "ef_construction": EF_CONSTRUCTION}
            },
        )

    def make_durable(self) -> None:
        # The ingest case runs until the data is durable: after the last batch every
        # file of the store is fsynced (as for raw faiss and hnswlib), whatever the
        # system's own default promises.
        fsync_tree(self.store)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        self.col.add(
            ids=[str(i) for i in ids.tolist()],
            embeddings=vectors,
            metadatas=[{k: v for k, v in m.items() if v is not None} for m in metas],
        )

    def finish_index(self) -> None:
        probe = np.full((1, self.dim), self.dim**-0.5, np.float32)
        self.col.query(query_embeddings=probe, n_results=10, include=[])

    def set_ef(self, ef: int | None) -> None:
        # Chroma reads ef_search when it loads the HNSW segment: modify() alone does not
        # change a loaded index (measured: recall stays put), so drop the cached system
        # and reopen, as a restarted application would.
        if ef is None:
            return
        from chromadb.api.client import SharedSystemClient

        self.col.modify(configuration={"hnsw": {"ef_search": ef}})
        SharedSystemClient.clear_system_cache()
        self.open(self.path, self.dim)

    def search(self, q: np.ndarray, k: int) -> list[int]:
        res = self.col.query(query_embeddings=q.reshape(1, -1), n_results=k, include=INCLUDE)
        return [int(i) for i in res["ids"][0]]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        res = self.col.query(query_embeddings=qs, n_results=k, include=INCLUDE)
        return [[int(i) for i in row] for row in res["ids"]]

    def translate_filter(self, case: FilterCase) -> Any:
        f, op = case.spec["field"], case.spec["op"]
        if op == "eq":
            return {f: case.spec["value"]}
        if op == "in":
            return {f: {"$in": list(case.spec["value"])}}
        if op == "is_not_null":
            return {f: {"$gte": -(2**62)}}
        raise NotImplementedError(op)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        res = self.col.query(
            query_embeddings=q.reshape(1, -1), n_results=k, where=flt, include=INCLUDE
        )
        return [int(i) for i in res["ids"][0]]

    def close(self) -> None:
        self.col = None
        if self.client is not None and hasattr(self.client, "close"):
            self.client.close()
        self.client = None

    def open(self, path: str, dim: int) -> None:
        self.path, self.dim = path, dim
        self.store = path
        self.client = chromadb.PersistentClient(path=path)
        self.col = self.client.get_collection(NAME, embedding_function=None)


if __name__ == "__main__":
    sys.exit(main(Chroma()))
