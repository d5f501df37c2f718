"""KeelDB through its public API (``keeldb.open``), in the project's own environment.

Collection: cosine, m=16, ef_construction=200, default ``ef_search`` (overridden per call by
the sweep's ``ef``), database opened with ``durability="fsync"``: a write is acknowledged
after its WAL record is fsynced. "Indexed" = ``compact()`` returned after the last upsert,
so every row is served by HNSW segments (checked with ``stats()``).

Extra case ``filtered_exact``: the filtered cases again with ``exact=True``.

Extra case ``big_open`` (full mode): a cleanly closed 1,000,000-vector collection of
synthetic vectors is opened by a fresh process, which answers its first search.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (  # noqa: E402
    Adapter,
    FilterCase,
    RunContext,
    case_filtered,
    dir_bytes,
    main,
    median,
    rss_bytes,
)

M, EF_CONSTRUCTION, EF_SEARCH = 16, 200, 64
NAME = "docs"
BIG_ROWS = int(os.environ.get("KEELDB_BENCH_BIG_ROWS", "1000000"))  # env: smaller for tests
BIG_DIM = 384
BIG_EF_CONSTRUCTION = 40  # a 1M build at 200 takes too long on 2 cores; open cost is unaffected
BIG_BATCH = 10_000


class KeelDB(Adapter):
    system = "keeldb"
    packages = ("keeldb", "faiss-cpu")

    def __init__(self) -> None:
        self.db: Any = None
        self.col: Any = None
        self.ef: int | None = None
        self.exact = False  # the filtered_exact case: search(..., exact=True)
        self.stats_after_index: dict[str, Any] = {}
        self.compaction: dict[str, Any] = {}

    def import_lib(self) -> None:
        global keeldb
        import keeldb

    def params(self) -> dict[str, Any]:
        return {
            "metric": "cosine",
            "m": M,
            "ef_construction": EF_CONSTRUCTION,
            "ef_search (default; the sweep passes ef per call)": EF_SEARCH,
            "durability": "fsync",
        }

    def notes(self) -> list[str]:
        return [
            "indexed = compact() returned: every row served by HNSW segments",
            "cosine HNSW graphs keep float16 copies of the vectors (faiss IndexHNSWSQ); "
            "hits are re-scored with the float32 vectors, so distances are exact",
        ]

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        self.db = keeldb.open(path, durability="fsync")
        self.col = self.db.create_collection(
            NAME,
            dim=dim,
            metric="cosine",
            m=M,
            ef_construction=EF_CONSTRUCTION,
            ef_search=EF_SEARCH,
        )

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        self.col.upsert([str(i) for i in ids.tolist()], vectors, metas)

    def finish_index(self) -> None:
        report = self.col.compact()
        self.compaction = asdict(report)
        st = self.col.stats()
        self.stats_after_index = {
            "live_count": st.live_count,
            "segments": [{"kind": s.kind, "rows": s.rows} for s in st.segments],
            "memory_bytes": st.memory_bytes,
            "disk_bytes": st.disk_bytes,
            "wal_bytes": st.wal_bytes,
        }
        not_hnsw = sum(s.rows for s in st.segments if s.kind != "hnsw")
        if not_hnsw:
            raise RuntimeError(f"{not_hnsw} rows are outside HNSW segments after compact()")

    def set_ef(self, ef: int | None) -> None:
        self.ef = ef

    def search(self, q: np.ndarray, k: int) -> list[int]:
        return [int(h.id) for h in self.col.search(q, k, ef=self.ef)]

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        return [[int(h.id) for h in row] for row in self.col.search_batch(qs, k, ef=self.ef)]

    def translate_filter(self, case: FilterCase) -> Any:
        f, op = case.spec["field"], case.spec["op"]
        if op == "eq":
            return {f: case.spec["value"]}
        if op == "in":
            return {f: {"$in": list(case.spec["value"])}}
        if op == "is_not_null":
            return {f: {"$ne": None}}
        raise NotImplementedError(op)

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        if self.exact:
            return [int(h.id) for h in self.col.search(q, k, filter=flt, exact=True)]
        return [int(h.id) for h in self.col.search(q, k, ef=self.ef, filter=flt)]

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
        self.db = self.col = None

    def open(self, path: str, dim: int) -> None:
        self.db = keeldb.open(path, durability="fsync")
        self.col = self.db.get_collection(NAME)

    def extra_cases(self, ctx: RunContext) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.compaction:
            out["keeldb_index"] = {
                "status": "ok",
                "compaction": self.compaction,
                "stats": self.stats_after_index,
            }
        if (ctx.result["cases"].get("filtered") or {}).get("status") == "ok":
            reopen = self.col is None  # cold_open / footprint closed the store
            if reopen:
                self.open(ctx.store, ctx.data.dim)
            try:
                # The same filtered cases with exact=True: recall 1.0 by construction,
                # at the cost of comparing every matching row.
                self.exact = True
                try:
                    out["filtered_exact"] = case_filtered(self, ctx)
                except Exception as exc:
                    out["filtered_exact"] = _failed(exc)
                finally:
                    self.exact = False
                try:
                    out["filtered_sweep"] = self._filtered_sweep(ctx)
                except Exception as exc:
                    out["filtered_sweep"] = _failed(exc)
            finally:
                if reopen:
                    self.close()
        if (ctx.result["cases"].get("sweep") or {}).get("status") == "ok":
            try:
                out["paired_faiss"] = self._paired(ctx)
            except Exception as exc:
                out["paired_faiss"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        if "big_open" in ctx.args.extra.split(","):
            try:
                out["big_open"] = big_open(ctx)
            except Exception as exc:
                out["big_open"] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        return out

    def _filtered_sweep(self, ctx: RunContext) -> dict[str, Any]:
        """The filtered cases again at every swept ef above the one the ``filtered``
        case used: KeelDB's filtered recall / QPS curve (more ef buys recall)."""
        sweep = ctx.result["cases"]["sweep"]
        start = sweep["ef_at_target"]
        efs = [p["ef"] for p in sweep["points"] if start is not None and p["ef"] > start]
        points = []
        try:
            for ef in efs:
                res = case_filtered(self, ctx, ef=ef)
                points.append({"ef": ef, "cases": res["cases"]})
        finally:
            self.set_ef(start)
        return {"status": "ok", "points": points}

    def _paired(self, ctx: RunContext) -> dict[str, Any]:
        """Reopen the store and time KeelDB against raw faiss, interleaved (keeldb_paired)."""
        from keeldb_paired import paired_vs_faiss

        with keeldb.open(ctx.store, durability="fsync") as db:
            col = db.get_collection(NAME)
            return paired_vs_faiss(
                ctx, col, M, EF_CONSTRUCTION, rounds=max(11, ctx.args.repeats + 2)
            )


def big_open(ctx: RunContext) -> dict[str, Any]:
    """Build, close, then time fresh-process opens of a 1M-vector collection."""
    path = ctx.store + "-1m"
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(7)
    t0 = time.perf_counter()
    with keeldb.open(path, durability="none") as db:  # bulk import; durable at close
        col = db.create_collection(
            NAME,
            dim=BIG_DIM,
            metric="cosine",
            m=M,
            ef_construction=BIG_EF_CONSTRUCTION,
            ef_search=EF_SEARCH,
        )
        for s in range(0, BIG_ROWS, BIG_BATCH):
            v = rng.standard_normal((BIG_BATCH, BIG_DIM), dtype=np.float32)
            col.upsert(
                [str(i) for i in range(s, s + BIG_BATCH)],
                v,
                [{"i": i} for i in range(s, s + BIG_BATCH)],
            )
        ingest_s = time.perf_counter() - t0
        col.compact()
        kinds: dict[str, int] = {}
        for seg in col.stats().segments:
            kinds[seg.kind] = kinds.get(seg.kind, 0) + seg.rows
    build_s = time.perf_counter() - t0
    runs = []
    for _ in range(ctx.args.cold_repeats):
        cmd = [sys.executable, sys.argv[0], "--big-open-child", path]
        w0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - w0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        child["process_wall_s"] = wall
        runs.append(child)
    disk = dir_bytes(path)
    shutil.rmtree(path, ignore_errors=True)
    return {
        "status": "ok",
        "rows": BIG_ROWS,
        "dim": BIG_DIM,
        "vectors": "synthetic N(0,1)",
        "m": M,
        "ef_construction": BIG_EF_CONSTRUCTION,
        "ingest_durability": "none",
        "ingest_s": ingest_s,
        "build_s": build_s,
        "rows_by_segment_kind": kinds,
        "disk": disk,
        "runs": runs,
        "open_first_query_s": median([r["open_first_query_s"] for r in runs]),
        "open_s": median([r["open_s"] for r in runs]),
        "first_query_s": median([r["first_query_s"] for r in runs]),
        "import_s": median([r["import_s"] for r in runs]),
    }


def big_open_child(path: str) -> None:

    q = np.random.default_rng(11).standard_normal(BIG_DIM).astype(np.float32)
    t0 = time.perf_counter()
    import keeldb as kdb

    t1 = time.perf_counter()
    db = kdb.open(path, durability="fsync")
    col = db.get_collection(NAME)
    t2 = time.perf_counter()
    hits = col.search(q, 10)
    t3 = time.perf_counter()
    rss = rss_bytes("VmHWM")
    db.close()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "open_s": t2 - t1,
                "first_query_s": t3 - t2,
                "open_first_query_s": t3 - t1,
                "hits": len(hits),
                "hwm_rss_bytes": rss,
            }
        )
    )


def _failed(exc: Exception) -> dict[str, Any]:
    return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--big-open-child":
        big_open_child(sys.argv[2])
        sys.exit(0)
    sys.exit(main(KeelDB()))
