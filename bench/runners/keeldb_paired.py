"""KeelDB vs raw faiss, paired: both in one process, passes interleaved.

The machine is shared, so two systems timed minutes apart in different processes see
different load. Here KeelDB's reopened collection and a raw faiss ``IndexHNSWFlat`` built
from the same vectors with the same m / ef_construction (in this process, timed: the build
to compare KeelDB's time-to-indexed with) answer the same queries at the same ``ef`` (the
first swept ef where KeelDB's recall@10 reached 0.95), alternating KeelDB and faiss pass
by pass, so both see the same load. Ratios are medians of per-round ratios. The clock
covers each system's search calls only; converting their answers to row numbers for the
recall check is done afterwards (it is harness work, and differs between the two).

KeelDB is timed twice per round: as called by default (each hit with a freshly decoded
metadata dict) and with ``with_metadata=False`` (ids and distances only: the same output
as faiss). The ``*_bare`` figures are the latter.

A third index is timed for reference (no target): raw faiss ``IndexHNSWSQ`` with float16
vectors, the kind of graph KeelDB keeps for cosine segments (docs/format.md), built here
with the same parameters. KeelDB's ratio to it is its overhead over the same algorithm;
its ratio to ``IndexHNSWFlat`` (the targets) includes the float16 graph's speed-up.
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
    index16 = faiss.IndexHNSWSQ(
        data.dim, faiss.ScalarQuantizer.QT_fp16, m, faiss.METRIC_INNER_PRODUCT
    )
    index16.hnsw.efConstruction = ef_construction
    t0 = time.perf_counter()
    for s in range(0, data.base.shape[0], bs):
        index16.add(data.base[s : s + bs])
    faiss16_build_s = time.perf_counter() - t0
    index16.hnsw.efSearch = ef

    # Timed: the calls and what they return (KeelDB: hits with string ids and metadata;
    # faiss: arrays of row numbers). Turning both into row-number lists for the recall
    # check is the harness's work and happens after the clock stops.
    def k_single() -> list[Any]:
        return [col.search(q, K, ef=ef) for q in qs]

    def f_single() -> list[Any]:
        return [index.search(q.reshape(1, -1), K)[1] for q in qs]

    def k_batch() -> Any:
        return col.search_batch(qs, K, ef=ef)

    def k_single_bare() -> list[Any]:
        return [col.search(q, K, ef=ef, with_metadata=False) for q in qs]

    def k_batch_bare() -> Any:
        return col.search_batch(qs, K, ef=ef, with_metadata=False)

    def f_batch() -> Any:
        return index.search(qs, K)[1]

    def f16_single() -> list[Any]:
        return [index16.search(q.reshape(1, -1), K)[1] for q in qs]

    def f16_batch() -> Any:
        return index16.search(qs, K)[1]

    def row_numbers(name: str, out: Any) -> list[list[int]]:
        if name.startswith("k_"):
            return [[int(h.id) for h in hits] for hits in out]
        if name in ("f_single", "f16_single"):
            return [labels[0].tolist() for labels in out]
        return out.tolist()  # type: ignore[no-any-return]

    fns = {
        "k_single": k_single,
        "f_single": f_single,
        "f16_single": f16_single,
        "k_single_bare": k_single_bare,
        "k_batch": k_batch,
        "f_batch": f_batch,
        "f16_batch": f16_batch,
        "k_batch_bare": k_batch_bare,
    }
    times: dict[str, list[float]] = {name: [] for name in fns}
    recall: dict[str, float] = {}
    for r in range(rounds):
        for name, fn in fns.items():
            dt, res = _timed(fn)
            times[name].append(dt)
            if r == 0:
                recall[name] = recall_at_k(data.base, qs, row_numbers(name, res), data.gt_sims[:n])
            del res
    med = {k: statistics.median(v) for k, v in times.items()}

    def ratio(k: str, f: str) -> float:
        return statistics.median(a / b for a, b in zip(times[f], times[k], strict=True))

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
        "single_qps_ratio": ratio("k_single", "f_single"),
        "batch_qps_ratio": ratio("k_batch", "f_batch"),
        "keeldb_qps_single_bare": n / med["k_single_bare"],
        "keeldb_qps_batch_bare": n / med["k_batch_bare"],
        "single_qps_ratio_bare": ratio("k_single_bare", "f_single"),
        "batch_qps_ratio_bare": ratio("k_batch_bare", "f_batch"),
        "faiss_build_s": faiss_build_s,
        "faiss16_qps_single": n / med["f16_single"],
        "faiss16_qps_batch": n / med["f16_batch"],
        "single_qps_ratio_vs16": ratio("k_single", "f16_single"),
        "batch_qps_ratio_vs16": ratio("k_batch", "f16_batch"),
        "single_qps_ratio_bare_vs16": ratio("k_single_bare", "f16_single"),
        "batch_qps_ratio_bare_vs16": ratio("k_batch_bare", "f16_batch"),
        "faiss16_build_s": faiss16_build_s,
        "faiss16_single_ratio": ratio("f16_single", "f_single"),
        "faiss16_batch_ratio": ratio("f16_batch", "f_batch"),
        "faiss_threads": faiss.omp_get_max_threads(),
    }
