"""LanceDB, embedded (``lancedb.connect(path)``), with an HNSW index.

Index: ``HnswFlat`` (IVF_HNSW_FLAT) with ``num_partitions=1`` so the IVF layer is a single
partition and the index is one HNSW graph over raw float32 vectors: m=16,
ef_construction=200, cosine. LanceDB indexes only when asked, so "indexed" = the
``create_index`` call after the last ``add`` returned. Filters are SQL ``where`` clauses,
applied before the vector search (``prefilter=True``); no scalar index is created.
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
META_COLUMNS = ["name", "version", "year", "month", "rank", "text"]
COLUMNS = ["id", *META_COLUMNS]


class LanceDB(Adapter):
    system = "lancedb"
    packages = ("lancedb", "pyarrow")

    def __init__(self) -> None:
        self.db: Any = None
        self.tbl: Any = None
        self.ef: int | None = None

    def import_lib(self) -> None:
        global lancedb, pa
        import lancedb
        import pyarrow as pa

    def params(self) -> dict[str, Any]:
        return {
            "index": "HnswFlat (IVF_HNSW_FLAT), num_partitions=1",
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "distance_type": "cosine",
        }

    def notes(self) -> list[str]:
        return [
            "durable = every file of the store fsynced after the last batch",
            "'indexed' = create_index after the last add (LanceDB indexes on request)",
            "filters: SQL where with prefilter=True, no scalar index",
        ]

    def _schema(self, dim: int) -> Any:
        return pa.schema(
            [
                pa.field("id", pa.int64()),
                pa.field("vector", pa.list_(pa.float32(), dim)),
                pa.field("name", pa.string()),
                pa.field("version", pa.string()),
                pa.field("year", pa.int64()),
                pa.field("month", pa.string()),
                pa.field("rank", pa.int64()),
                pa.field("text", pa.string()),
            ]
        )

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        self.store = path
        self.db = lancedb.connect(path)
        self.schema = self._schema(dim)
        self.tbl = self.db.create_table(NAME, schema=self.schema)

    def make_durable(self) -> None:
        # The ingest case runs until the data is durable: after the last batch every
        # file of the store is fsynced (as for raw faiss and hnswlib), whatever the
        # system's own default promises.
        fsync_tree(self.store)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        dim = vectors.shape[1]
        cols = [
            pa.array(ids, pa.int64()),
            pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        ]
        cols += [pa.array([m[c] for m in metas], self.schema.field(c).type) for c in META_COLUMNS]
        self.tbl.add(pa.Table.from_arrays(cols, schema=self.schema))

    def finish_index(self) -> None:
        from lancedb.index import HnswFlat

        cfg = HnswFlat(
            distance_type="cosine", num_partitions=1, m=M, ef_construction=EF_CONSTRUCTION
        )
        self.tbl.create_index("vector", config=cfg)

    def set_ef(self, ef: int | None) -> None:
        self.ef = ef

    def _query(self, q: Any, k: int) -> Any:
        qb = self.tbl.search(q).distance_type("cosine").limit(k).select([*COLUMNS, "_distance"])
        return qb.ef(self.ef) if self.ef is not None else qb

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return self._query(q, k).to_arrow()["id"].to_pylist()  # type: ignore[no-any-return]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        t = self._query(list(qs), k).to_arrow()
        out: list[list[int]] = [[] for _ in range(len(qs))]
        for qi, rid in zip(t["query_index"].to_pylist(), t["id"].to_pylist(), strict=True):
            out[qi].append(rid)
        return out

    def translate_filter(self, case: FilterCase) -> Any:
        f, op = case.spec["field"], case.spec["op"]
        if op == "eq":
            return f"{f} = {int(case.spec['value'])}"
        if op == "in":
            return f"{f} IN ({', '.join(str(int(v)) for v in case.spec['value'])})"
        if op == "is_not_null":
            return f"{f} IS NOT NULL"
        raise NotImplementedError(op)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        t = self._query(q, k).where(flt, prefilter=True).to_arrow()
        return t["id"].to_pylist()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.tbl = None
        self.db = None

    def open(self, path: str, dim: int) -> None:
        self.db = lancedb.connect(path)
        self.tbl = self.db.open_table(NAME)


if __name__ == "__main__":
    sys.exit(main(LanceDB()))
