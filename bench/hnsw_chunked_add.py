"""Benchmark: HNSW build in one faiss ``add`` call vs in ``ADD_CHUNK_ROWS`` chunks with a
progress callback (what ``Collection.compact(progress=...)`` does), paired in the same run.

Reads the real pypi-minilm vectors (``/work/shared/datasets/pypi-minilm``; cosine, so the
float16 graph), builds each way ``--rounds`` times in alternating order, and prints each
build time, recall@10 at ef=64 against the dataset's exact ground truth, and the
chunked/one-call time ratio per round. Slow (minutes per build on 2 cores):
``.venv/bin/python bench/hnsw_chunked_add.py --rows 100000 --rounds 2``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from keeldb.index.hnsw import ADD_CHUNK_ROWS, HnswIndex

DATA = "/work/shared/datasets/pypi-minilm"


def _unit(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float32)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--m", type=int, default=16)
    parser.add_argument("--ef-construction", type=int, default=200)
    args = parser.parse_args()
    base = _unit(np.load(f"{DATA}/base.f16.npy")[: args.rows])
    queries = _unit(np.load(f"{DATA}/queries.f16.npy")[: args.queries])
    gt = np.load(f"{DATA}/gt.i32.npy")[: args.queries, :10]
    if args.rows < 100_000:
        print("note: fewer rows than the dataset: the ground truth does not apply")
    print(
        f"{args.rows:,} x {base.shape[1]}, m={args.m}, efc={args.ef_construction}, "
        f"chunk {ADD_CHUNK_ROWS:,}"
    )
    times: dict[str, list[float]] = {"one": [], "chunked": []}
    for rnd in range(args.rounds):
        for name in ("one", "chunked") if rnd % 2 == 0 else ("chunked", "one"):
            reports: list[int] = []
            t0 = time.perf_counter()
            index = HnswIndex.build(
                base,
                "cosine",
                args.m,
                args.ef_construction,
                reports.append if name == "chunked" else None,
            )
            dt = time.perf_counter() - t0
            labels = index.search_rows(queries, 10, 64, None)
            recall = np.mean([len(set(labels[i]) & set(gt[i])) / 10 for i in range(len(gt))])
            times[name].append(dt)
            print(
                f"round {rnd} {name:7s}: {dt:7.1f}s  recall@10(ef=64) {recall:.4f}  "
                f"progress reports {len(reports)}",
                flush=True,
            )
            del index
    ratios = [c / o for c, o in zip(times["chunked"], times["one"], strict=True)]
    print("chunked/one time ratio per round:", ", ".join(f"{r:.2f}" for r in ratios))


if __name__ == "__main__":
    main()
