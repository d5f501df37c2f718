"""Raw faiss (no database around it): ``IndexHNSWFlat`` and exact ``IndexFlatIP``.

The reference KeelDB must stay close to. Vectors are L2-normalised, so inner product is
cosine. Raw faiss keeps no metadata and no string ids: rows are their index, the filter is
a bitmap precomputed with numpy before timing (what a raw-faiss user would do), and
"durable" means ``write_index`` followed by fsync.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Adapter, FilterCase, RunContext, fsync_tree, main  # noqa: E402

M, EF_CONSTRUCTION = 16, 200
INDEX_FILE = "index.faiss"


class FaissHnsw(Adapter):
    system = "faiss-hnsw"
    packages = ("faiss-cpu",)

    def __init__(self) -> None:
        self.index: Any = None
        self.path = ""
        self.ef: int | None = None
        self.build_s = 0.0

    def import_lib(self) -> None:
        global faiss
        import faiss

    def params(self) -> dict[str, Any]:
        return {
            "index": "IndexHNSWFlat",
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "metric": "inner product on normalised vectors (= cosine)",
            "threads": faiss.omp_get_max_threads(),
        }

    def notes(self) -> list[str]:
        return [
            "no metadata stored: filters use a numpy bitmap built before timing",
            "durable = write_index + fsync after the last batch",
        ]

    def _new_index(self, dim: int) -> Any:
        index = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = EF_CONSTRUCTION
        return index

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.index = self._new_index(dim)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        self.index.add(vectors)
        self.build_s += time.perf_counter() - t0

    def extra_cases(self, ctx: RunContext) -> dict[str, Any]:
        # the pure index build (sum of add() calls), without write_index and fsync
        return {"build": {"status": "ok", "build_s": self.build_s}}

    def make_durable(self) -> None:
        faiss.write_index(self.index, os.path.join(self.path, INDEX_FILE))
        fsync_tree(self.path)

    def set_ef(self, ef: int | None) -> None:
        self.ef = ef
        if ef is not None:
            self.index.hnsw.efSearch = ef

    def search(self, q: np.ndarray, k: int) -> list[int]:
        _, ids = self.index.search(q.reshape(1, -1), k)
        return ids[0].tolist()  # type: ignore[no-any-return]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        _, ids = self.index.search(qs, k)
        return ids.tolist()  # type: ignore[no-any-return]

    def translate_filter(self, case: FilterCase) -> Any:
        bits = np.packbits(case.mask, bitorder="little")
        sel = faiss.IDSelectorBitmap(len(case.mask), faiss.swig_ptr(bits))
        return (bits, sel)  # keep the bitmap alive as long as the selector

    def _search_params(self, sel: Any) -> Any:
        return faiss.SearchParametersHNSW(sel=sel, efSearch=self.ef or 16)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        _, ids = self.index.search(q.reshape(1, -1), k, params=self._search_params(flt[1]))
        return ids[0].tolist()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.index = None

    def open(self, path: str, dim: int) -> None:
        self.index = faiss.read_index(os.path.join(path, INDEX_FILE))


class FaissFlat(FaissHnsw):
    system = "faiss-flat"
    supports_ef = False

    def params(self) -> dict[str, Any]:
        return {
            "index": "IndexFlatIP (exact)",
            "metric": "inner product on normalised vectors",
            "threads": faiss.omp_get_max_threads(),
        }

    def _new_index(self, dim: int) -> Any:
        return faiss.IndexFlatIP(dim)

    def set_ef(self, ef: int | None) -> None:
        self.ef = ef

    def _search_params(self, sel: Any) -> Any:
        return faiss.SearchParameters(sel=sel)


if __name__ == "__main__":
    sys.exit(main(FaissHnsw()))
