"""hnswlib (the HNSW library Chroma embeds), used raw: ``Index(space="cosine")``.

Like raw faiss it stores no metadata: the filter is a Python callable over a numpy bitmap
(hnswlib's own filter API), and "durable" means ``save_index`` followed by fsync.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import Adapter, FilterCase, fsync_tree, main  # noqa: E402

M, EF_CONSTRUCTION = 16, 200
INDEX_FILE = "index.hnswlib"


class Hnswlib(Adapter):
    system = "hnswlib"
    packages = ("hnswlib",)

    def __init__(self) -> None:
        self.index: Any = None
        self.path = ""
        self.n_total = 0

    def import_lib(self) -> None:
        global hnswlib
        import hnswlib

    def params(self) -> dict[str, Any]:
        return {
            "index": "hnswlib.Index(space='cosine')",
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "threads": os.cpu_count(),
        }

    def notes(self) -> list[str]:
        return [
            "no metadata stored: filters are a Python callable over a numpy bitmap",
            "durable = save_index + fsync after the last batch",
        ]

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        os.makedirs(path, exist_ok=True)
        self.path = path
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.index.init_index(max_elements=expected_rows, ef_construction=EF_CONSTRUCTION, M=M)

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        need = int(ids[-1]) + 1
        if need > self.index.get_max_elements():
            self.index.resize_index(max(need, 2 * self.index.get_max_elements()))
        self.index.add_items(vectors, ids)

    def make_durable(self) -> None:
        self.index.save_index(os.path.join(self.path, INDEX_FILE))
        fsync_tree(self.path)

    def set_ef(self, ef: int | None) -> None:
        if ef is not None:
            self.index.set_ef(max(ef, 10))

    def search(self, q: np.ndarray, k: int) -> list[int]:
        labels, _ = self.index.knn_query(q, k=k)
        return labels[0].tolist()  # type: ignore[no-any-return]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        labels, _ = self.index.knn_query(qs, k=k)
        return labels.tolist()  # type: ignore[no-any-return]

    def translate_filter(self, case: FilterCase) -> Any:
        mask = case.mask
        return lambda label: bool(mask[label])

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        labels, _ = self.index.knn_query(q, k=k, filter=flt)
        return labels[0].tolist()  # type: ignore[no-any-return]

    def close(self) -> None:
        self.index = None

    def open(self, path: str, dim: int) -> None:
        self.index = hnswlib.Index(space="cosine", dim=dim)
        self.index.load_index(os.path.join(path, INDEX_FILE))


if __name__ == "__main__":
    sys.exit(main(Hnswlib()))
