"""Past RAM: search a collection whose files are several times a memory limit imposed on
the process (cgroup v1, ``bench/memlimit.py``), and compare with the same searches
unlimited: the process must not be killed and must return the same ids.

    python -m bench.past_ram --rows 1000000 --dim 384 --limit-mib 512      # the benchmark
    python -m bench.past_ram search DB QUERIES.npy K                        # child mode

The collection is built once (random unit vectors, cosine, HNSW) under
``bench/.work/past-ram-<rows>x<dim>`` and reused. Before each measured run the files'
cached pages are dropped, so both runs start cold and the limited one is charged for every
page it reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.memlimit import available, drop_file_cache, run_limited

WORK = Path(__file__).resolve().parent / ".work"


def open_options(hnsw: bool, rows: int) -> dict[str, object]:
    """``keeldb.open`` options for the collection :func:`build` makes."""
    if hnsw:
        return {}
    # A few large flat segments, sealed inline and never merged (written once).
    return {"hnsw_min_rows": 1 << 40, "memtable_rows": -(-rows // 4), "background": False}


def build(path: Path, rows: int, dim: int, *, hnsw: bool, seed: int = 0) -> int:
    """Create collection ``c`` with ``rows`` random unit vectors (HNSW-indexed when
    ``hnsw``, else flat segments); returns the bytes of the database's files."""
    import keeldb

    rng = np.random.default_rng(seed)
    with keeldb.open(path, durability="none", **open_options(hnsw, rows)) as db:
        col = db.create_collection("c", dim=dim, metric="cosine", m=12, ef_construction=80)
        batch = 20_000
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            vecs = rng.standard_normal((n, dim)).astype(np.float32)
            col.upsert([f"r{start + i:08d}" for i in range(n)], vecs)
        if hnsw:
            col.compact()
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def search_child(db_path: str, queries_path: str, k: int, options_json: str) -> None:
    """Child mode: open the database (with ``options_json``), search every query once,
    print JSON (ids per query, seconds, peak RSS)."""
    import resource

    import keeldb

    queries = np.load(queries_path)
    with keeldb.open(db_path, **json.loads(options_json)) as db:
        col = db.get_collection("c")
        col.search(queries[0], k=k)  # the first search maps the files
        t0 = time.perf_counter()
        ids = [[h.id for h in col.search(q, k=k)] for q in queries]
        seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"ids": ids, "seconds": seconds, "max_rss_bytes": rss}))


def run_pair(
    db_path: Path,
    queries: np.ndarray,
    k: int,
    limit_bytes: int,
    options: dict[str, object] | None = None,
) -> dict[str, object]:
    """Search unlimited, then under the limit, each from a cold page cache; ``options``
    are the ``keeldb.open`` options of the collection (:func:`open_options`)."""
    qpath = db_path.parent / f"{db_path.name}-queries.npy"
    np.save(qpath, queries.astype(np.float32))
    cmd = [sys.executable, "-m", "bench.past_ram", "search", str(db_path), str(qpath), str(k)]
    cmd.append(json.dumps(options or {}))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    files_bytes = drop_file_cache(db_path)
    free = run_limited(cmd, 1 << 50, env=env)
    drop_file_cache(db_path)
    limited = run_limited(cmd, limit_bytes, env=env)
    out: dict[str, object] = {
        "files_bytes": files_bytes,
        "limit_bytes": limit_bytes,
        "unlimited": _summary(free, len(queries)),
        "limited": _summary(limited, len(queries)),
    }
    if free.returncode == 0 and limited.returncode == 0:
        a, b = json.loads(free.stdout)["ids"], json.loads(limited.stdout)["ids"]
        out["same_ids"] = a == b
    return out


def _summary(run: object, q: int) -> dict[str, object]:
    from bench.memlimit import LimitedRun

    assert isinstance(run, LimitedRun)
    out: dict[str, object] = {
        "returncode": run.returncode,
        "oom_killed": run.oom_killed,
        "max_usage_bytes": run.max_usage_bytes,
    }
    if run.returncode == 0:
        doc = json.loads(run.stdout)
        out["qps"] = q / doc["seconds"]
        out["max_rss_bytes"] = doc["max_rss_bytes"]
    else:
        out["stderr_tail"] = run.stderr[-2000:]
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["search"]:
        search_child(argv[1], argv[2], int(argv[3]), argv[4])
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--limit-mib", type=int, default=512)
    p.add_argument("--queries", type=int, default=200)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--out", type=Path, default=WORK.parent / "results" / "past_ram.json")
    args = p.parse_args(argv)
    reason = available()
    if reason is not None:
        print(f"SKIPPED: {reason}")
        return 0
    db_path = WORK / f"past-ram-{args.rows}x{args.dim}"
    if not (db_path / "KEELDB").exists():
        t0 = time.perf_counter()
        size = build(db_path, args.rows, args.dim, hnsw=True)
        print(f"built {db_path} ({size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    queries = np.random.default_rng(1).standard_normal((args.queries, args.dim))
    result = run_pair(db_path, queries, args.k, args.limit_mib << 20)
    result.update(
        command=f"python -m bench.past_ram --rows {args.rows} --dim {args.dim} "
        f"--limit-mib {args.limit_mib}",
        rows=args.rows,
        dim=args.dim,
        queries=args.queries,
    )
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    return 0 if result.get("same_ids") else 1


if __name__ == "__main__":
    raise SystemExit(main())
