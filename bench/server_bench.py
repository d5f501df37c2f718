"""Server benchmark: HTTP search throughput and latency, and a mixed read/write soak.

Run from the repository root (one run, ~3 minutes on 2 cores)::

    .venv/bin/python bench/server_bench.py            # 20k base vectors, 60 s soak
    .venv/bin/python bench/server_bench.py --base 100000 --soak-s 60

What it measures, on the pypi-minilm data set (384-d MiniLM embeddings, cosine):

1. **Latency**: p50/p99 of one ``search(k=10)`` called in process (embedded) and the same
   query through ``keeldb.Client`` over HTTP to ``keeldb serve`` on 127.0.0.1.
2. **Throughput**: searches/s from 1 client and from 8 concurrent clients (separate
   processes, each with its own ``Client``, each searching back to back) for
   ``--throughput-s`` seconds each, alternating for ``--rounds`` rounds; the median
   round's ratio is reported. Target: 8 clients >= 1.6 x one client on 2 cores.
3. **Soak**: ``--soak-s`` seconds of concurrent upserts (2 writer processes, batches of
   new ids) and searches (4 searcher processes). Every acknowledged batch is recorded.
   Then the server is killed with SIGKILL, restarted, and every acknowledged record is
   read back and compared bit for bit. Target: zero errors, zero lost writes.

Clients run in separate processes so the client side does not share one GIL; they do share
the machine's cores with the server, as they would on a small host. Results are printed and
written to ``bench/results/server_bench.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("KEELDB_BENCH_DATASET", REPO.parent / "shared/datasets/pypi-minilm"))
RESULTS = REPO / "bench" / "results"
COLLECTION = "bench"
K = 10


def load_data(n_base: int, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_base`` base rows and ``n_queries`` queries, float32, unit length."""
    base = np.load(DATASET / "base.f16.npy", mmap_mode="r")[:n_base].astype(np.float32)
    queries = np.load(DATASET / "queries.f16.npy")[:n_queries].astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return base, queries


def percentiles_ms(samples_s: list[float]) -> dict[str, float]:
    arr = np.asarray(samples_s) * 1000
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "mean_ms": round(float(arr.mean()), 3),
        "n": len(samples_s),
    }


# --- workers (run in child processes) ------------------------------------------------


def _search_worker(
    url: str, queries: np.ndarray, ready: Any, go: Any, duration_s: float, out: Any, seed: int
) -> None:
    from keeldb.client import Client

    with Client(url) as client:
        col = client.get_collection(COLLECTION)
        col.search(queries[0], k=K)  # connect and warm up
        ready.set()
        go.wait()
        rng = np.random.default_rng(seed)
        n, errors, latencies = 0, 0, []
        end = time.perf_counter() + duration_s
        while (now := time.perf_counter()) < end:
            q = queries[rng.integers(len(queries))]
            try:
                col.search(q, k=K)
                n += 1
                latencies.append(time.perf_counter() - now)
            except Exception as exc:  # counted, reported
                errors += 1
                print(f"search error: {exc!r}", file=sys.stderr)
        out.put(
            {
                "kind": "search",
                "n": n,
                "errors": errors,
                "latencies": latencies,
                "cpu_s": time.process_time(),
            }
        )


def _write_worker(
    url: str,
    base: np.ndarray,
    writer: int,
    ready: Any,
    go: Any,
    duration_s: float,
    out: Any,
    batch: int,
) -> None:
    from keeldb.client import Client

    acked: list[str] = []
    errors = 0
    with Client(url) as client:
        col = client.get_collection(COLLECTION)
        ready.set()
        go.wait()
        rng = np.random.default_rng(1000 + writer)
        seq = 0
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end:
            rows = rng.integers(len(base), size=batch)
            ids = [f"w{writer}-{seq}-{j}" for j in range(batch)]
            vectors = base[rows] + rng.normal(scale=0.01, size=(batch, base.shape[1])).astype(
                np.float32
            )
            try:
                col.upsert(ids, vectors, [{"writer": writer, "seq": seq}] * batch)
                acked.extend(ids)  # acknowledged: the server answered 200
            except Exception as exc:
                errors += 1
                print(f"upsert error: {exc!r}", file=sys.stderr)
            seq += 1
    out.put({"kind": "write", "writer": writer, "acked": acked, "errors": errors, "batches": seq})


def run_clients(
    url: str,
    searchers: int,
    writers: int,
    duration_s: float,
    queries: np.ndarray,
    base: np.ndarray | None = None,
    write_batch: int = 50,
) -> list[dict[str, Any]]:
    """Start client processes, release them together, collect their reports."""
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    procs, readies = [], []
    for i in range(searchers):
        ready = ctx.Event()
        procs.append(
            ctx.Process(target=_search_worker, args=(url, queries, ready, go, duration_s, out, i))
        )
        readies.append(ready)
    for w in range(writers):
        ready = ctx.Event()
        procs.append(
            ctx.Process(
                target=_write_worker, args=(url, base, w, ready, go, duration_s, out, write_batch)
            )
        )
        readies.append(ready)
    for p in procs:
        p.start()
    for ready in readies:
        if not ready.wait(120):
            raise RuntimeError("a client process did not start")
    go.set()
    reports = [out.get(timeout=duration_s + 120) for _ in procs]
    for p in procs:
        p.join(30)
    return reports


# --- phases --------------------------------------------------------------------------


def build(path: Path, base: np.ndarray) -> dict[str, Any]:
    """Load ``base`` into a fresh collection, compact, close. Returns timings."""
    import keeldb

    t0 = time.perf_counter()
    with keeldb.open(path, durability="none") as db:
        col = db.create_collection(COLLECTION, dim=base.shape[1], metric="cosine")
        for lo in range(0, len(base), 5000):
            col.upsert(
                [f"b{i}" for i in range(lo, min(lo + 5000, len(base)))], base[lo : lo + 5000]
            )
        col.flush()
        col.compact()
        stats = col.stats()
    return {
        "rows": len(base),
        "build_s": round(time.perf_counter() - t0, 1),
        "index_type": stats.index_type,
        "segments": len(stats.segments),
    }


def embedded_latency(path: Path, queries: np.ndarray, n: int) -> dict[str, float]:
    import keeldb

    with keeldb.open(path) as db:
        col = db.get_collection(COLLECTION)
        for q in queries[:50]:
            col.search(q, k=K)
        samples = []
        for i in range(n):
            q = queries[i % len(queries)]
            t = time.perf_counter()
            col.search(q, k=K)
            samples.append(time.perf_counter() - t)
    return percentiles_ms(samples)


def http_latency(url: str, queries: np.ndarray, n: int) -> dict[str, float]:
    from keeldb.client import Client

    with Client(url) as client:
        col = client.get_collection(COLLECTION)
        for q in queries[:50]:
            col.search(q, k=K)
        samples = []
        for i in range(n):
            q = queries[i % len(queries)]
            t = time.perf_counter()
            col.search(q, k=K)
            samples.append(time.perf_counter() - t)
    return percentiles_ms(samples)


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    url: str, server_pid: int, queries: np.ndarray, clients: int, duration_s: float
) -> dict[str, Any]:
    cpu0 = process_cpu_s(server_pid)
    reports = run_clients(url, clients, 0, duration_s, queries)
    server_cpu = process_cpu_s(server_pid) - cpu0
    n = sum(r["n"] for r in reports)
    lat = [x for r in reports for x in r["latencies"]]
    return {
        "clients": clients,
        "searches": n,
        "qps": round(n / duration_s, 1),
        "errors": sum(r["errors"] for r in reports),
        **percentiles_ms(lat),
        # Where the time goes: server CPU per search (all its threads, including the
        # clients' warm-up) and how many cores it kept busy; client CPU per search
        # (includes each client process's start-up, ~0.5 s).
        "server_cpu_ms_per_search": round(server_cpu / max(n, 1) * 1000, 3),
        "server_cores_busy": round(server_cpu / duration_s, 2),
        "client_cpu_ms_per_search": round(sum(r["cpu_s"] for r in reports) / max(n, 1) * 1000, 3),
    }


def soak(
    path: Path, url_holder: dict[str, Any], base: np.ndarray, queries: np.ndarray, duration_s: float
) -> dict[str, Any]:
    """Mixed load, then SIGKILL + restart + verify every acknowledged write."""
    from keeldb.client import Client
    from keeldb.server.testing import ServerProcess

    reports = run_clients(url_holder["url"], 4, 2, duration_s, queries, base=base)
    searches = [r for r in reports if r["kind"] == "search"]
    writes = [r for r in reports if r["kind"] == "write"]
    acked = [i for r in writes for i in r["acked"]]
    url_holder["server"].kill()  # no graceful shutdown: only acknowledged = durable counts
    with ServerProcess(path) as server, Client(server.url) as client:
        col = client.get_collection(COLLECTION)
        missing = 0
        for lo in range(0, len(acked), 1000):
            got = col.get(acked[lo : lo + 1000])
            missing += sum(r is None for r in got)
        total = col.count()
    return {
        "duration_s": duration_s,
        "searches": sum(r["n"] for r in searches),
        "search_qps": round(sum(r["n"] for r in searches) / duration_s, 1),
        "search_errors": sum(r["errors"] for r in searches),
        "upsert_batches": sum(r["batches"] for r in writes),
        "acknowledged_records": len(acked),
        "upsert_errors": sum(r["errors"] for r in writes),
        "lost_after_sigkill": missing,
        "count_after_restart": total,
        **{
            f"search_{k}": v
            for k, v in percentiles_ms([x for r in searches for x in r["latencies"]]).items()
            if k != "n"
        },
    }


def _commit() -> str | None:
    """The measured commit (with ``+dirty`` when src/ has uncommitted changes)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return None
    return (head + ("+dirty" if dirty else "")) or None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=int, default=20_000, help="base vectors to load")
    parser.add_argument("--latency-n", type=int, default=1000, help="searches per latency run")
    parser.add_argument("--throughput-s", type=float, default=6.0, help="per phase")
    parser.add_argument("--rounds", type=int, default=3, help="1-vs-8 client rounds")
    parser.add_argument("--soak-s", type=float, default=60.0)
    parser.add_argument(
        "--threads", type=int, default=None, help="server read threads (default: its own)"
    )
    args = parser.parse_args()

    from keeldb.server.testing import ServerProcess

    base, queries = load_data(args.base, 1000)
    work = Path(tempfile.mkdtemp(prefix="keeldb-server-bench-"))
    path = work / "db"
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "params": vars(args) | {"k": K, "dataset": str(DATASET)},
    }
    try:
        print(f"load average at start: {os.getloadavg()}", flush=True)
        print(f"building {args.base:,} vectors ...", flush=True)
        results["build"] = build(path, base)
        print(f"  {results['build']}", flush=True)
        results["latency_embedded"] = embedded_latency(path, queries, args.latency_n)
        print(f"embedded search latency: {results['latency_embedded']}", flush=True)
        server = ServerProcess(
            path,
            args=[
                "--log-level",
                "warning",
                *(["--threads", str(args.threads)] if args.threads else []),
            ],
        ).start()
        holder = {"server": server, "url": server.url}
        try:
            results["latency_http"] = http_latency(server.url, queries, args.latency_n)
            print(f"HTTP search latency:     {results['latency_http']}", flush=True)
            pid = server.process.pid  # type: ignore[union-attr]
            # 1 and 8 clients alternate for --rounds rounds: a shared host's load drifts
            # over minutes, and alternating exposes both settings to the same drift.
            rounds = []
            for r in range(args.rounds):
                one = throughput(server.url, pid, queries, 1, args.throughput_s)
                eight = throughput(server.url, pid, queries, 8, args.throughput_s)
                ratio = round(eight["qps"] / one["qps"], 2)
                rounds.append(
                    {
                        "one_client": one,
                        "eight_clients": eight,
                        "speedup": ratio,
                        "loadavg_1m": round(os.getloadavg()[0], 2),
                    }
                )
                print(
                    f"round {r + 1}: 1 client {one['qps']} qps, 8 clients {eight['qps']} qps,"
                    f" speedup {ratio}x (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
                print(f"  1 client:  {one}\n  8 clients: {eight}", flush=True)
            speedups = sorted(x["speedup"] for x in rounds)
            results["throughput"] = {
                "rounds": rounds,
                "speedup": speedups[len(speedups) // 2],  # the median round
                "speedup_min": speedups[0],
                "speedup_max": speedups[-1],
            }
            print(
                f"  speedup 8 vs 1, median of {args.rounds}: "
                f"{results['throughput']['speedup']}x (target >= 1.6x)",
                flush=True,
            )
            print(
                f"soak: {args.soak_s:.0f}s of 2 writers + 4 searchers, then SIGKILL ...", flush=True
            )
            results["soak"] = soak(path, holder, base, queries, args.soak_s)
            print(f"  {results['soak']}", flush=True)
        finally:
            server.kill()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ok = (
        results["throughput"]["speedup"] >= 1.6
        and results["soak"]["search_errors"] == 0
        and results["soak"]["upsert_errors"] == 0
        and results["soak"]["lost_after_sigkill"] == 0
    )
    results["targets_met"] = ok
    # Other work on the host skews every figure: say how busy it was.
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["finished_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    results["commit"] = _commit()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "server_bench.json").write_text(json.dumps(results, indent=2))
    print(f"targets met: {ok}; results in {RESULTS / 'server_bench.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
