"""Milvus Lite: ``pymilvus.MilvusClient`` on a local ``.db`` file (milvus-lite package).

Collection schema: int64 primary key, the vector, and one typed (nullable) field per
metadata key; index HNSW with M=16, efConstruction=200, metric COSINE, declared at
creation so sealed segments are indexed as they are written. "Durable" is the insert call
returning plus ``flush()``; "indexed" is when milvus-lite's background index builder has
drained after that flush. Filters are Milvus boolean expressions (``year == 2024``,
``year in [...]``, ``rank is not null``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Adapter, FilterCase, main  # noqa: E402

M, EF_CONSTRUCTION = 16, 200
NAME = "docs"
DB_FILE = "milvus.db"
OUTPUT = ["name", "version", "year", "month", "rank", "text"]


class MilvusLite(Adapter):
    system = "milvus-lite"
    packages = ("pymilvus", "milvus-lite", "faiss-cpu")

    def __init__(self) -> None:
        self.client: Any = None
        self.search_params: dict[str, Any] = {}

    def import_lib(self) -> None:
        global MilvusClient, DataType
        from pymilvus import DataType, MilvusClient

    def params(self) -> dict[str, Any]:
        return {
            "client": "MilvusClient(uri=<local file>)",
            "index": "HNSW",
            "M": M,
            "efConstruction": EF_CONSTRUCTION,
            "metric_type": "COSINE",
        }

    def notes(self) -> list[str]:
        return [
            "durable = insert returned + flush(); indexed = background index builds "
            "drained (internal Collection._wait_for_bg: describe_index reports rows as "
            "indexed before they are)"
        ]

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        os.makedirs(path, exist_ok=True)
        self.client = MilvusClient(os.path.join(path, DB_FILE))
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("name", DataType.VARCHAR, max_length=1024)
        schema.add_field("version", DataType.VARCHAR, max_length=1024)
        schema.add_field("year", DataType.INT64, nullable=True)
        schema.add_field("month", DataType.VARCHAR, max_length=16, nullable=True)
        schema.add_field("rank", DataType.INT64, nullable=True)
        schema.add_field("text", DataType.VARCHAR, max_length=8192)
        index = self.client.prepare_index_params()
        index.add_index(
            field_name="vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": M, "efConstruction": EF_CONSTRUCTION},
        )
        self.client.create_collection(NAME, schema=schema, index_params=index)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        rows = [
            {"id": i, "vector": v, **m}
            for i, v, m in zip(ids.tolist(), vectors, metas, strict=True)
        ]
        self.client.insert(NAME, data=rows)

    def make_durable(self) -> None:
        self.client.flush(NAME)

    def finish_index(self) -> None:
        # describe_index reports every row indexed while milvus-lite is still building
        # segment indexes on its background worker (measured: the first queries after it
        # ran at brute-force speed and recall). There is no public wait, so drain that
        # worker through the in-process server's collection object.
        from milvus_lite.server_manager import server_manager_instance

        for _server, db, _port in list(server_manager_instance._servers.values()):
            col = db.get_collection(NAME)
            col._wait_for_bg()
            col._ensure_loaded_segments_indexed()  # builds any segment still without one

    def set_ef(self, ef: int | None) -> None:
        self.search_params = {"params": {"ef": ef}} if ef is not None else {}

    def _search(self, data: Any, k: int, flt: str = "") -> Any:
        return self.client.search(
            NAME,
            data=data,
            limit=k,
            filter=flt,
            search_params=self.search_params,
            output_fields=OUTPUT,
        )

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return [h["id"] for h in self._search([q], k)[0]]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        return [[h["id"] for h in row] for row in self._search(list(qs), k)]

    def translate_filter(self, case: FilterCase) -> Any:
        f, op = case.spec["field"], case.spec["op"]
        if op == "eq":
            return f"{f} == {int(case.spec['value'])}"
        if op == "in":
            return f"{f} in [{', '.join(str(int(v)) for v in case.spec['value'])}]"
        if op == "is_not_null":
            return f"{f} is not null"
        raise NotImplementedError(op)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        return [h["id"] for h in self._search([q], k, flt)[0]]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            # The client's close() leaves milvus-lite's in-process server (and its lock on
            # the data directory) running until exit; release it so another process can
            # open the store, as after an application shutdown.
            from milvus_lite.server_manager import server_manager_instance

            server_manager_instance.release_all()
        self.client = None

    def open(self, path: str, dim: int) -> None:
        self.client = MilvusClient(os.path.join(path, DB_FILE))
        self.client.load_collection(NAME)


if __name__ == "__main__":
    sys.exit(main(MilvusLite()))
