"""KeelDB's fixed cost per single-query call, and the default call against raw faiss.

On 384-d pypi-minilm data (the first 50,000 and 100,000 base rows; cosine, m=16,
ef_construction=200, one HNSW segment after ``compact()``), in one process:

1. **ef** where both reach recall@10 0.95: the first of a sweep where KeelDB's default
   call and raw faiss ``IndexHNSWFlat`` (built here from the same vectors, same m and
   ef_construction) both reach it.
2. **Paired timing** at that ef, ``--rounds`` interleaved rounds, one query per call:
   * ``keeldb``: ``col.search(v, k=10, ef=ef)``, the default call (a metadata dict per hit);
   * ``keeldb_bare``: the same with ``with_metadata=False``;
   * ``graph``: faiss's own search call (``index.search_c``, one thread, arrays allocated
     once) on **KeelDB's graph** (the segment's loaded faiss index, same ``efSearch``):
     the time spent inside faiss for the same walk;
   * ``faiss_flat``: raw faiss ``IndexHNSWFlat.search`` (the target's baseline), and its
     batch call beside KeelDB's ``search_batch``.
   **KeelDB time outside faiss** per call = ``keeldb`` − ``graph`` (per-round medians of
   per-query times): validation, planning, the thread policy, re-scoring the float16
   graph's hits against float32 vectors, merging, ids and metadata decoding.

    python -m bench overhead [--rows 50000,100000] [--queries 1000] [--rounds 7]

Targets (issue 16): <= 20 us of KeelDB time outside faiss; single query >= 0.8x raw faiss
``IndexHNSWFlat`` QPS at the first ef where both reach 0.95; batch >= 1.0x.
Results: ``bench/results/overhead.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.predicates import DATASET, RESULTS, K, kth_sim, recall

WORK = Path(__file__).resolve().parent / ".work" / "overhead"
EFS = (16, 24, 32, 40, 48, 64, 96, 128)
BUILD_VERSION = "1"


def load(rows: int, queries: int) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    base = np.load(DATASET / "base.f16.npy")[:rows].astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q = np.load(DATASET / "queries.f16.npy")[:queries].astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    metas = []
    with gzip.open(DATASET / "meta.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            metas.append(json.loads(line))  # the full row, text included (as bench/ does)
            if len(metas) >= rows:
                break
    return np.ascontiguousarray(base), np.ascontiguousarray(q), metas


def open_collection(base: np.ndarray, metas: list[dict[str, Any]]) -> tuple[Any, Any, float]:
    """(db, collection, build seconds or 0 when reused) over ``base``."""
    import keeldb

    path = WORK / f"pypi-{len(base)}"
    build_s = 0.0
    if not ((path / "READY").exists() and (path / "READY").read_text() == BUILD_VERSION):
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        t0 = time.perf_counter()
        with keeldb.open(path / "db", durability="none") as db:
            col = db.create_collection("c", dim=base.shape[1], metric="cosine")
            for s in range(0, len(base), 5000):
                ids = [str(i) for i in range(s, min(s + 5000, len(base)))]
                col.upsert(ids, base[s : s + 5000], metas[s : s + 5000])
            col.compact()
        build_s = time.perf_counter() - t0
        (path / "READY").write_text(BUILD_VERSION)
    db = keeldb.open(path / "db")
    return db, db.get_collection("c"), build_s


def graph_of(col: Any) -> Any:
    """The faiss index of the collection's single HNSW segment."""
    segs = col._state.segments
    assert len(segs) == 1 and segs[0].hnsw is not None, "expected one HNSW segment"
    return segs[0].hnsw.index


def run_size(rows: int, args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    base, qs, metas = load(rows, args.queries)
    db, col, build_s = open_collection(base, metas)
    try:
        sims = qs @ base.T
        thr = kth_sim(sims, None)
        flat = faiss.IndexHNSWFlat(base.shape[1], 16, faiss.METRIC_INNER_PRODUCT)
        flat.hnsw.efConstruction = 200
        t0 = time.perf_counter()
        flat.add(base)
        flat_build_s = time.perf_counter() - t0
        graph = graph_of(col)

        def rec(rows_per_q: list[list[int]]) -> float:
            return sum(recall(rows_per_q, sims, thr, None)) / (K * len(qs))

        sweep = []
        chosen = None
        for ef in EFS:
            flat.hnsw.efSearch = ef
            rk = rec([[int(h.id) for h in col.search(q, K, ef=ef)] for q in qs])
            rf = rec(flat.search(qs, K)[1].tolist())
            sweep.append({"ef": ef, "keeldb_recall": rk, "faiss_recall": rf})
            print(
                f"  {rows:,} rows ef={ef}: recall KeelDB {rk:.4f}, faiss Flat {rf:.4f}", flush=True
            )
            if rk >= 0.95 and rf >= 0.95:
                chosen = ef
                break
        ef = chosen or EFS[-1]
        flat.hnsw.efSearch = ef
        timing = paired(col, graph, flat, qs, ef, args.rounds)
    finally:
        db.close()
    per_q = {k: statistics.median(v) * 1e6 / len(qs) for k, v in timing.items()}
    over = [
        (tk - tg) * 1e6 / len(qs) for tk, tg in zip(timing["keeldb"], timing["graph"], strict=True)
    ]
    over_bare = [
        (tk - tg) * 1e6 / len(qs)
        for tk, tg in zip(timing["keeldb_bare"], timing["graph"], strict=True)
    ]
    over_cpu = [
        (tk - tg) * 1e6 / len(qs)
        for tk, tg in zip(timing["keeldb_cpu"], timing["graph_cpu"], strict=True)
    ]
    over_cpu_bare = [
        (tk - tg) * 1e6 / len(qs)
        for tk, tg in zip(timing["keeldb_bare_cpu"], timing["graph_cpu"], strict=True)
    ]

    def ratio(a: str, b: str) -> float:
        return statistics.median(tb / ta for ta, tb in zip(timing[a], timing[b], strict=True))

    out = {
        "rows": rows,
        "dim": int(base.shape[1]),
        "queries": len(qs),
        "ef": ef,
        "sweep": sweep,
        "keeldb_build_s": build_s,
        "faiss_flat_build_s": flat_build_s,
        "us_per_query": per_q,
        "overhead_us": statistics.median(over),
        "overhead_us_bare": statistics.median(over_bare),
        "overhead_us_rounds": over,
        "overhead_cpu_us": statistics.median(over_cpu),
        "overhead_cpu_us_bare": statistics.median(over_cpu_bare),
        "single_ratio_cpu": ratio("keeldb_cpu", "faiss_flat_cpu"),
        "batch_ratio_cpu": ratio("keeldb_batch_cpu", "faiss_flat_batch_cpu"),
        "single_ratio": ratio("keeldb", "faiss_flat"),
        "single_ratio_bare": ratio("keeldb_bare", "faiss_flat"),
        "batch_ratio": ratio("keeldb_batch", "faiss_flat_batch"),
        "rounds": args.rounds,
    }
    print(
        f"  {rows:,} rows, ef={ef}: per query (us) "
        + ", ".join(f"{k} {v:.1f}" for k, v in per_q.items())
        + f"\n  KeelDB time outside faiss: {out['overhead_us']:.1f} us per call "
        f"(with_metadata=False: {out['overhead_us_bare']:.1f} us)"
        f"\n  by CPU time: {out['overhead_cpu_us']:.1f} us (bare {out['overhead_cpu_us_bare']:.1f})"
        f"; single {out['single_ratio_cpu']:.2f}x, batch {out['batch_ratio_cpu']:.2f}x"
        f"\n  single query vs raw faiss IndexHNSWFlat: {out['single_ratio']:.2f}x "
        f"(bare {out['single_ratio_bare']:.2f}x); batch {out['batch_ratio']:.2f}x",
        flush=True,
    )
    return out


def paired(
    col: Any, graph: Any, flat: Any, qs: np.ndarray, ef: int, rounds: int
) -> dict[str, list[float]]:
    """Seconds per pass of each way of searching, ``rounds`` interleaved rounds."""
    import faiss

    params = faiss.SearchParametersHNSW()
    params.efSearch = ef
    d = np.empty((1, K), dtype=np.float32)
    lab = np.empty((1, K), dtype=np.int64)
    dp, lp = faiss.swig_ptr(d), faiss.swig_ptr(lab)
    qptrs = [faiss.swig_ptr(qs[i : i + 1]) for i in range(len(qs))]
    rows_q = [qs[i] for i in range(len(qs))]

    def keeldb() -> None:
        for q in rows_q:
            col.search(q, K, ef=ef)

    def keeldb_bare() -> None:
        for q in rows_q:
            col.search(q, K, ef=ef, with_metadata=False)

    def graph_only() -> None:
        for p in qptrs:
            graph.search_c(1, p, K, dp, lp, params)

    def faiss_flat() -> None:
        for i in range(len(qs)):
            flat.search(qs[i : i + 1], K)

    def keeldb_batch() -> None:
        col.search_batch(qs, K, ef=ef)

    def faiss_flat_batch() -> None:
        flat.search(qs, K)

    fns = {
        "keeldb": keeldb,
        "keeldb_bare": keeldb_bare,
        "graph": graph_only,
        "faiss_flat": faiss_flat,
        "keeldb_batch": keeldb_batch,
        "faiss_flat_batch": faiss_flat_batch,
    }
    times: dict[str, list[float]] = {k: [] for k in fns}
    times.update({f"{k}_cpu": [] for k in fns})
    threads = faiss.omp_get_max_threads()
    for _ in range(rounds):
        for name, fn in fns.items():
            # single-query raw calls on one OpenMP thread, like KeelDB's policy
            batch = name.endswith("batch")
            faiss.omp_set_num_threads(threads if batch else 1)
            # CPU time beside wall time: on a busy shared machine the wall clock mostly
            # measures waiting for a core; a single query runs on the calling thread.
            cpu = time.process_time if batch else time.thread_time
            c0, t0 = cpu(), time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
            times[f"{name}_cpu"].append(cpu() - c0)
    faiss.omp_set_num_threads(threads)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench overhead",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--rows", default="50000,100000")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "overhead.json"
    for r in [int(x) for x in args.rows.split(",") if x]:
        size = run_size(r, args)
        # written after each size (a size run alone replaces only its own entry)
        old = json.loads(path.read_text()) if path.exists() else {"sizes": []}
        sizes = [s for s in old["sizes"] if s["rows"] != r] + [size]
        out = {
            "sizes": sorted(sizes, key=lambda s: s["rows"]),
            "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            "loadavg": os.getloadavg(),
        }
        path.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
