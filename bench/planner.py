"""Measure the filtered-search planner's cost-model constants on this machine.

Prints, for 100k x 384 HNSW graphs of the pypi-minilm dataset (float32 and float16
vectors): faiss distance computations and latency per ef (-> HNSW_NDIS_COEF/EXP,
HNSW_US_PER_DIS_DIM and HNSW16_US_PER_DIS_DIM), the
in-place exact-scan cost per row for growing subsets (-> EXACT_US_PER_ROW_DIM), and the
batched gather+BLAS cost (-> GEMM_US_PER_ROW_DIM) and the scan of a compact fp16 copy
(-> COMPACT_US_PER_ROW_DIM). Compare with the constants in
src/keeldb/engine/segment.py; docs/filtering.md records the values used.

    .venv/bin/python bench/planner.py [--data ../shared/datasets/pypi-minilm] [--rows 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import faiss
import numpy as np

from keeldb.index.exact import exact_search
from keeldb.index.hnsw import HnswIndex

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--data", default=os.path.join(HERE, "..", "..", "shared", "datasets", "pypi-minilm")
    )
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    base = np.load(os.path.join(args.data, "base.f16.npy"), mmap_mode="r")[: args.rows].astype(
        np.float32
    )
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    q = np.load(os.path.join(args.data, "queries.f16.npy"))[: args.queries].astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    dim = base.shape[1]
    pc = time.perf_counter
    stats = faiss.cvar.hnsw_stats
    # The two kinds of graph KeelDB builds: float32 vectors (l2, ip) and float16 (cosine).
    for kind, metric in (("float32 (l2, ip)", "ip"), ("float16 (cosine)", "cosine")):
        print(
            f"\nbuilding a {kind} HNSW graph over {len(base)} x {dim} (m=16, "
            "ef_construction=200) ...",
            flush=True,
        )
        index = HnswIndex.build(base, metric, 16, 200).index
        print(
            f"HNSW {kind}: ef, distance computations per query, median latency, "
            "us per distance per dim"
        )
        for ef in (16, 32, 64, 128, 256, 512):
            params = faiss.SearchParametersHNSW()
            params.efSearch = ef
            stats.reset()
            times = []
            for i in range(len(q)):
                t = pc()
                index.search(q[i : i + 1], 10, params=params)
                times.append(pc() - t)
            ndis = stats.ndis / len(q)
            med = float(np.median(times)) * 1e6
            print(
                f"  ef={ef:4d} ndis={ndis:7.0f} ({ndis / ef**0.82:5.1f} * ef^0.82)"
                f"  {med:7.0f} us  {med / ndis / dim:.2e}"
            )
        del index
    rng = np.random.default_rng(0)
    tmp = tempfile.mkdtemp()
    try:
        print("\nExact scan of a row subset, one query, in place: rows, median, us per row per dim")
        for count in (1000, 4000, 16000, 50000):
            rows = np.sort(rng.choice(len(base), count, replace=False))
            times = []
            for i in range(len(q)):
                # a different subset offset per query keeps the rows from staying cache-hot
                sub = np.sort((rows + i * 7919) % len(base))
                t = pc()
                exact_search(base, q[i : i + 1], 10, "cosine", rows=sub)
                times.append(pc() - t)
            med = float(np.median(times)) * 1e6
            print(f"  rows={count:6d} {med:8.0f} us  {med / count / dim:.2e}")
        print(
            "\nExact scan, batch of 1000 queries (gather once + BLAS):"
            " rows, us per query, us per row per dim per query"
        )
        qq = np.repeat(q, max(1, 1000 // len(q)) + 1, axis=0)[:1000]
        for count in (4000, 16000):
            rows = np.sort(rng.choice(len(base), count, replace=False))
            t = pc()
            exact_search(base, qq, 10, "cosine", rows=rows)
            per_q = (pc() - t) / len(qq) * 1e6
            print(f"  rows={count:6d} {per_q:8.1f} us/query  {per_q / count / dim:.2e}")
        print("\nCompact fp16 copy of a row subset (faiss flat fp16), one query: rows, median,")
        print("us per row per dim")
        for count in (4000, 16000):
            rows = np.sort(rng.choice(len(base), count, replace=False))
            compact = faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
            )
            compact.add(base[rows])
            times = []
            for i in range(len(q)):
                t = pc()
                compact.search(q[i : i + 1], 40)
                times.append(pc() - t)
            med = float(np.median(times)) * 1e6
            print(f"  rows={count:6d} {med:8.0f} us  {med / count / dim:.2e}")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
