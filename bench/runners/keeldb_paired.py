"""KeelDB vs raw faiss, paired: both in one process, passes interleaved.

The machine is shared, so two systems timed minutes apart in different processes see
different load. Here KeelDB's reopened collection and a raw faiss ``IndexHNSWFlat`` built
from the same vectors with the same m / ef_construction (in this process, timed: the build
to compare KeelDB's time-to-indexed with) answer the same queries at the same ``ef`` (the
first swept ef where KeelDB's recall@10 reached 0.95), alternating KeelDB and faiss pass
by pass, so both see the same load. Ratios are medians of per-round ratios. The clock
covers each system's search calls only; converting their answers to row numbers for the
recall check is done afterwards (it is harness work, and differs between the two).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np
from common import K, RunContext, recall_at_k


def _timed(fn: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def paired_vs_faiss(
    ctx: RunContext, col: Any, m: int, ef_construction: int, rounds: int
) -> dict[str, Any]:
    import faiss

    data = ctx.data
    sweep = ctx.result["cases"]["sweep"]
    ef = sweep["ef_at_target"]
    n = next(p for p in sweep["points"] if p["ef"] == ef)["n_queries"]
    qs = np.ascontiguousarray(data.queries[:n])
    index = faiss.IndexHNSWFlat(data.dim, m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = ef_construction
    bs = ctx.args.batch_size
    t0 = time.perf_counter()
    for s in range(0, data.base.shape[0], bs):
        index.add(data.base[s : s + bs])
    faiss_build_s = time.perf_counter() - t0
    index.hnsw.efSearch = ef

    # Timed: the calls and what they return (KeelDB: hits with string ids and metadata;
    # faiss: arrays of row numbers). Turning both into row-number lists for the recall
    # check is the harness's work and happens after the clock stops.
    def k_single() -> list[Any]:
        return [col.search(q, K, ef=ef) for q in qs]

    def f_single() -> list[Any]:
        return [index.search(q.reshape(1, -1), K)[1] for q in qs]

    def k_batch() -> Any:
        return col.search_batch(qs, K, ef=ef)

    def f_batch() -> Any:
        return index.search(qs, K)[1]

    def row_numbers(name: str, out: Any) -> list[list[int]]:
        if name == "k_single" or name == "k_batch":
            return [[int(h.id) for h in hits] for hits in out]
        if name == "f_single":
            return [labels[0].tolist() for labels in out]
        return out.tolist()  # type: ignore[no-any-return]

    times: dict[str, list[float]] = {"k_single": [], "f_single": [], "k_batch": [], "f_batch": []}
    recall: dict[str, float] = {}
    fns = {"k_single": k_single, "f_single": f_single, "k_batch": k_batch, "f_batch": f_batch}
    for r in range(rounds):
        for name, fn in fns.items():
            dt, res = _timed(fn)
            times[name].append(dt)
            if r == 0:
                recall[name] = recall_at_k(data.base, qs, row_numbers(name, res), data.gt_sims[:n])
            del res
    med = {k: statistics.median(v) for k, v in times.items()}
    single_ratios = [f / k for k, f in zip(times["k_single"], times["f_single"], strict=True)]
    batch_ratios = [f / k for k, f in zip(times["k_batch"], times["f_batch"], strict=True)]
    return {
        "status": "ok",
        "ef": ef,
        "n_queries": n,
        "rounds": rounds,
        "times_s": times,
        "recall": recall,
        "keeldb_qps_single": n / med["k_single"],
        "faiss_qps_single": n / med["f_single"],
        "keeldb_qps_batch": n / med["k_batch"],
        "faiss_qps_batch": n / med["f_batch"],
        "single_qps_ratio": statistics.median(single_ratios),
        "batch_qps_ratio": statistics.median(batch_ratios),
        "faiss_build_s": faiss_build_s,
        "faiss_threads": faiss.omp_get_max_threads(),
    }
