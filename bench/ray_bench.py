"""Sharded collections on Ray vs one embedded collection (docs/scaling.md).

    python bench/ray_bench.py [--base 20000] [--queries 200] [--data DIR]

Reads the pypi-minilm set from ../shared/datasets (this benchmark may; tests may not):
the first ``--base`` base vectors and the first ``--queries`` queries (float16 cast to
float32, cosine). Measures, in one run on this machine:

* per-query latency of ``search(q, k=10)`` (HNSW, default ef) with 1, 2 and 4 shards vs
  the embedded collection: median and p99, and the overhead over embedded;
* ingest rate (rows/s, batches of 1,000, durability fsync) with 1 and 2 shards vs
  embedded;
* recall@10 of 4 shards vs one collection at the same ef, against exact top 10 over the
  same rows;
* per-shard call latency (one shard's search through Ray), and from it a simulated
  tail-latency model: the latency of a query over S shards is the router's own cost plus
  the slowest of S independent draws from the measured per-shard latencies, for S up to
  64.

Every shard runs on this one machine (2 shared cores here): more shards add parallel work
for the same cores, so nothing here measures a speed-up from more machines. Writes JSON
to bench/results/ray.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import keeldb  # noqa: E402
from keeldb.ray import ShardedDatabase  # noqa: E402
from keeldb.ray.shardset import loopback_only  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "pypi-minilm"
K = 10
BATCH = 1000
# Small enough that every shard of the subset builds HNSW segments like the embedded one.
OPTIONS = {"hnsw_min_rows": 2000}


def load(data: Path, n_base: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    base = np.load(data / "base.f16.npy", mmap_mode="r")[:n_base].astype(np.float32)
    queries = np.load(data / "queries.f16.npy")[:n_queries].astype(np.float32)
    return base, queries


def ingest(col: Any, ids: list[str], base: np.ndarray) -> float:
    """Rows per second of upserts in batches of BATCH."""
    t0 = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        col.upsert(ids[start : start + BATCH], base[start : start + BATCH])
    return len(ids) / (time.perf_counter() - t0)


def latencies(search: Any, queries: np.ndarray, rounds: int = 2) -> np.ndarray:
    """Seconds per call of ``search(q)``, every query ``rounds`` times (after a warm-up)."""
    for q in queries[:10]:
        search(q)
    out = []
    for _ in range(rounds):
        for q in queries:
            t0 = time.perf_counter()
            search(q)
            out.append(time.perf_counter() - t0)
    return np.array(out)


def summary(samples: np.ndarray) -> dict[str, float]:
    return {
        "median_ms": float(np.median(samples) * 1e3),
        "p99_ms": float(np.percentile(samples, 99) * 1e3),
    }


def recall(got: list[list[Any]], truth: list[list[Any]]) -> float:
    found = sum(len({h.id for h in g} & {h.id for h in t}) for g, t in zip(got, truth, strict=True))
    return found / (K * len(truth))


def tail_model(
    per_shard_s: np.ndarray, router_s: float, shard_counts: list[int], draws: int = 20000
) -> dict[int, dict[str, float]]:
    """Simulated latency over S shards: router cost + max of S per-shard draws."""
    rng = np.random.default_rng(0)
    out = {}
    for s in shard_counts:
        sample = rng.choice(per_shard_s, size=(draws, s), replace=True).max(axis=1) + router_s
        out[s] = summary(sample)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=int, default=20000)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ray.json")
    args = p.parse_args()
    base, queries = load(args.data, args.base, args.queries)
    ids = [f"pkg-{i:06d}" for i in range(len(base))]
    work = Path(tempfile.mkdtemp(prefix="kdb-raybench-"))
    loopback_only()
    import ray

    ray_tmp = tempfile.mkdtemp(prefix="kdbray-", dir="/tmp")  # short: Ray's socket paths
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        _temp_dir=ray_tmp,
        log_to_driver=False,
    )
    results: dict[str, Any] = {
        "data": f"pypi-minilm: first {len(base)} base vectors, first {len(queries)} queries",
        "cpus": os.cpu_count(),
        "k": K,
    }
    try:
        db = keeldb.open(work / "embedded", **OPTIONS)
        emb = db.create_collection("docs", dim=base.shape[1])
        rate = {"embedded": ingest(emb, ids, base)}
        emb.compact()
        truth = emb.search_batch(queries, K, exact=True, with_metadata=False)
        lat = {"embedded": latencies(lambda q: emb.search(q, K), queries)}
        rec = {"embedded": recall(emb.search_batch(queries, K, with_metadata=False), truth)}
        per_shard: np.ndarray | None = None
        for shards in (1, 2, 4):
            sdb = ShardedDatabase.open(work / f"sharded-{shards}", shards=shards, **OPTIONS)
            try:
                col = sdb.create_collection("docs", dim=base.shape[1])
                r = ingest(col, ids, base)
                if shards <= 2:
                    rate[f"{shards} shards"] = r
                col.compact()
                assert col.info().index_type == "hnsw"
                lat[f"{shards} shards"] = latencies(lambda q, c=col: c.search(q, K), queries)
                rec[f"{shards} shards"] = recall(
                    col.search_batch(queries, K, with_metadata=False), truth
                )
                if shards == 4:
                    actor = sdb.shard_set.actors[0]

                    def one_shard(q: np.ndarray, a: Any = actor) -> Any:
                        return ray.get(a.collection_call.remote("default", "docs", "search", q, K))

                    # More samples: the model's p99 over S shards reads the per-shard
                    # distribution's 1 - 0.01/S quantile.
                    per_shard = latencies(one_shard, queries, rounds=10)
            finally:
                sdb.close()
        db.close()
        assert per_shard is not None
        one = lat["1 shards"]
        # The router's own cost: one shard through the router minus one bare shard call.
        router_s = max(0.0, float(np.median(one)) - float(np.median(per_shard)))
        emb_median = float(np.median(lat["embedded"]))
        results["latency"] = {
            name: {
                **summary(s),
                "overhead_median_ms": (float(np.median(s)) - emb_median) * 1e3,
            }
            for name, s in lat.items()
        }
        results["ingest_rows_per_s"] = rate
        results["ingest_ratio_2_vs_1"] = rate["2 shards"] / rate["1 shards"]
        results["recall_at_10"] = rec
        results["per_shard_call"] = summary(per_shard)
        results["router_ms"] = router_s * 1e3
        results["tail_model"] = tail_model(per_shard, router_s, [1, 2, 4, 8, 16, 32, 64])
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print_table(results)
    return 0


def print_table(r: dict[str, Any]) -> None:
    print(f"data: {r['data']}; {r['cpus']} cpus; k={r['k']}")
    print("search latency (ms)       median     p99   overhead(median)")
    for name, s in r["latency"].items():
        print(
            f"  {name:22s} {s['median_ms']:7.2f} {s['p99_ms']:7.2f}   "
            f"{s['overhead_median_ms']:+.2f}"
        )
    print("ingest (rows/s)")
    for name, v in r["ingest_rows_per_s"].items():
        print(f"  {name:22s} {v:9.0f}")
    print(f"  2 shards / 1 shard     {r['ingest_ratio_2_vs_1']:.2f}x")
    print("recall@10 (same ef)")
    for name, v in r["recall_at_10"].items():
        print(f"  {name:22s} {v:.4f}")
    pc = r["per_shard_call"]
    print(f"one shard's call: median {pc['median_ms']:.2f} ms, p99 {pc['p99_ms']:.2f} ms;")
    print(f"router cost: {r['router_ms']:.2f} ms")
    print("simulated latency over S shards (ms)   median     p99")
    for s, v in r["tail_model"].items():
        print(f"  S={s:<3d}                              {v['median_ms']:7.2f} {v['p99_ms']:7.2f}")


if __name__ == "__main__":
    raise SystemExit(main())
