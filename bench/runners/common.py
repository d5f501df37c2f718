"""Harness shared by every benchmark runner: the cases, their timing and their JSON.

A runner is a small script that subclasses :class:`Adapter` for one system and calls
:func:`main`. It runs inside that system's own virtual environment, so this module uses
only the standard library and numpy. The driver (``bench/driver.py``) starts it as::

    <venv>/bin/python bench/runners/<system>.py --data DIR --store DIR --out FILE ...

Contract of the cases (the numbers ``docs/benchmarks.md`` shows):

- ``ingest``: rows go in batches (default 1,000) with their metadata; ``ack_s`` runs from
  the first batch until the last write returned and the system's own durability step
  finished; ``indexed_s`` (same start) until every row is served by the system's ANN index.
- ``sweep``: recall@10 and QPS per ``ef``: one query per call (a Python loop), then one
  batch call with all timed queries. Each pass is repeated and the median time is kept.
- ``filtered``: one query per call with each filter case of the data set, at the smallest
  swept ``ef`` whose unfiltered recall@10 reached 0.95 (else the largest).
- ``cold_open``: after ``close()``, a fresh interpreter imports the library, opens the
  persisted store and answers one query; repeated, median kept.
- ``footprint``: bytes on disk of the closed store; peak RSS of this process.

Recall is tie-aware (as in ann-benchmarks): a returned row counts when its exact cosine
similarity to the query is at least that of the true 10th neighbour minus ``TIE_EPS``
(the data set has duplicate vectors, see its README), and, for a filtered case, when it
matches the filter. A row id returned twice counts once.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np

K = 10
TIE_EPS = 1e-5
RECALL_TARGET = 0.95


@dataclass
class FilterCase:
    """One filtered-search case: ``spec`` is the data set's machine-readable predicate."""

    id: str
    predicate: str
    spec: dict[str, Any]
    mask: np.ndarray  # bool per base row
    gt_ids: np.ndarray  # (n_queries, 10)
    gt_sims: np.ndarray  # (n_queries, 10)


class Dataset:
    """The prepared data of one mode (``bench/data.py`` writes it): float32, normalised."""

    def __init__(self, data_dir: str | Path, with_meta: bool = True) -> None:
        d = Path(data_dir)
        self.dir = d
        self.base = np.load(d / "base.f32.npy")
        self.queries = np.load(d / "queries.f32.npy")
        self.gt_ids = np.load(d / "gt.i32.npy")
        self.gt_sims = np.load(d / "gt_sim.f32.npy")
        info = json.loads((d / "filters.json").read_text())
        self.info = info
        arrays = np.load(d / "filtered_gt.npz")
        self.cases = [
            FilterCase(
                id=c["id"],
                predicate=c["predicate"],
                spec=c["spec"],
                mask=arrays[f"{c['id']}_mask"],
                gt_ids=arrays[f"{c['id']}_ids"],
                gt_sims=arrays[f"{c['id']}_sims"],
            )
            for c in info["cases"]
        ]
        self.metas: list[dict[str, Any]] = []
        if with_meta:
            with open(d / "meta.jsonl", encoding="utf-8") as f:
                self.metas = [json.loads(line) for line in f]

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])


def hits_per_query(
    base: np.ndarray,
    queries: np.ndarray,
    results: list[list[int]],
    gt_sims: np.ndarray,
    mask: np.ndarray | None = None,
    k: int = K,
) -> list[int]:
    """For each query, how many of ``results``' first ``k`` rows (row indices, -1 =
    padding) are true top-``k`` neighbours (tie-aware; only rows in ``mask`` count)."""
    out = []
    for qi, row in enumerate(results):
        ids = np.unique(np.asarray([i for i in row[:k] if i >= 0], dtype=np.int64))
        if ids.size == 0:
            out.append(0)
            continue
        if mask is not None:
            ids = ids[mask[ids]]
        sims = base[ids] @ queries[qi]
        out.append(min(k, int(np.count_nonzero(sims >= gt_sims[qi, k - 1] - TIE_EPS))))
    return out


def recall_at_k(
    base: np.ndarray,
    queries: np.ndarray,
    results: list[list[int]],
    gt_sims: np.ndarray,
    mask: np.ndarray | None = None,
    k: int = K,
) -> float:
    """Mean tie-aware recall@k of ``results`` (row indices, -1 = padding)."""
    return sum(hits_per_query(base, queries, results, gt_sims, mask, k)) / (k * len(results))


class Adapter:
    """One system under test. Row ids are the base row indices (ints); an adapter maps
    them to its own id type. Methods that a system cannot do raise NotImplementedError,
    and the case reports "unsupported" with the reason."""

    system = "?"
    supports_ef = True
    packages: tuple[str, ...] = ()

    def versions(self) -> dict[str, str]:
        out = {"python": platform.python_version(), "numpy": np.__version__}
        for p in self.packages:
            try:
                out[p] = importlib_metadata.version(p)
            except importlib_metadata.PackageNotFoundError:
                out[p] = "missing"
        return out

    def params(self) -> dict[str, Any]:
        return {}

    def notes(self) -> list[str]:
        return []

    def import_lib(self) -> None:
        """Import the system's library (timed separately in the cold-open case)."""

    def create(self, path: str, dim: int, expected_rows: int) -> None:
        """Create an empty store at ``path`` (a directory the harness gives each run)."""
        raise NotImplementedError

    def ingest(self, ids: np.ndarray, vectors: np.ndarray, metas: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def make_durable(self) -> None:
        """After the last batch: whatever the system needs before the data is on disk."""

    def finish_index(self) -> None:
        """Block until every row is served by the ANN index."""

    def set_ef(self, ef: int | None) -> None:
        """Set the search-time candidate list size (HNSW ``ef``)."""

    def search(self, q: np.ndarray, k: int) -> list[int]:
        raise NotImplementedError

    def search_batch(self, qs: np.ndarray, k: int) -> list[list[int]]:
        raise NotImplementedError

    def translate_filter(self, case: FilterCase) -> Any:
        raise NotImplementedError

    def search_filtered(self, q: np.ndarray, k: int, flt: Any) -> list[int]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def open(self, path: str, dim: int) -> None:
        raise NotImplementedError

    def extra_cases(self, ctx: RunContext) -> dict[str, Any]:
        """System-specific cases (KeelDB's own targets); merged into ``cases``."""
        return {}


@dataclass
class RunContext:
    args: argparse.Namespace
    data: Dataset
    store: str
    result: dict[str, Any]


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident set (``VmHWM``: its peak). Unlike ``ru_maxrss``, which a
    child inherits from the process that forked it, ``VmHWM`` starts afresh at exec."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def dir_bytes(path: str | Path) -> dict[str, int]:
    apparent = allocated = files = 0
    p = Path(path)
    paths = [p] if p.is_file() else [x for x in p.rglob("*") if x.is_file()]
    for x in paths:
        st = x.stat()
        apparent += st.st_size
        allocated += st.st_blocks * 512
        files += 1
    return {"apparent_bytes": apparent, "allocated_bytes": allocated, "files": files}


def _time_passes(fn: Any, repeats: int) -> tuple[list[float], Any]:
    times, first = [], None
    for r in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        if r == 0:
            first = out
    return times, first


def case_ingest(ad: Adapter, ctx: RunContext) -> dict[str, Any]:
    data, bs = ctx.data, ctx.args.batch_size
    n = data.base.shape[0]
    ad.create(ctx.store, data.dim, n)
    t0 = time.perf_counter()
    for s in range(0, n, bs):
        e = min(n, s + bs)
        ad.ingest(np.arange(s, e, dtype=np.int64), data.base[s:e], data.metas[s:e])
    ad.make_durable()
    ack = time.perf_counter() - t0
    ad.finish_index()
    indexed = time.perf_counter() - t0
    return {
        "status": "ok",
        "n": n,
        "batch_size": bs,
        "ack_s": ack,
        "ack_rate_vps": n / ack,
        "indexed_s": indexed,
        "indexed_rate_vps": n / indexed,
    }


def _calibrate(ad: Adapter, ctx: RunContext, ef: int | None) -> int:
    """How many queries each timed pass uses: all, unless a pass would exceed the budget."""
    nq = ctx.data.queries.shape[0]
    ad.set_ef(ef)
    probe = min(20, nq)
    t0 = time.perf_counter()
    for i in range(probe):
        ad.search(ctx.data.queries[i], K)
    per_q = (time.perf_counter() - t0) / probe
    if per_q * nq <= ctx.args.pass_budget_s:
        return nq
    return max(min(nq, ctx.args.min_queries), int(ctx.args.pass_budget_s / per_q) // 50 * 50)


def _calibrate_filtered(ad: Adapter, ctx: RunContext, flt: Any, n: int) -> int:
    """Like :func:`_calibrate` for one filter case (filters can be far slower)."""
    probe = min(5, n)
    t0 = time.perf_counter()
    for i in range(probe):
        ad.search_filtered(ctx.data.queries[i], K, flt)
    per_q = (time.perf_counter() - t0) / probe
    if per_q * n <= ctx.args.pass_budget_s:
        return n
    return max(min(n, 20), int(ctx.args.pass_budget_s / per_q) // 10 * 10)


def case_sweep(ad: Adapter, ctx: RunContext) -> dict[str, Any]:
    data, reps = ctx.data, ctx.args.repeats
    efs: list[int | None] = list(ctx.args.efs) if ad.supports_ef else [None]
    n = _calibrate(ad, ctx, efs[-1])
    qs = np.ascontiguousarray(data.queries[:n])
    points = []
    for ef in efs:
        ad.set_ef(ef)
        single_t, single_res = _time_passes(lambda: [ad.search(q, K) for q in qs], reps)
        pt: dict[str, Any] = {
            "ef": ef,
            "n_queries": n,
            "recall": recall_at_k(data.base, qs, single_res, data.gt_sims[:n]),
            "single_times_s": single_t,
            "qps_single": n / median(single_t),
        }
        try:
            batch_t, batch_res = _time_passes(lambda: ad.search_batch(qs, K), reps)
            pt["recall_batch"] = recall_at_k(data.base, qs, batch_res, data.gt_sims[:n])
            pt["batch_times_s"] = batch_t
            pt["qps_batch"] = n / median(batch_t)
        except NotImplementedError as exc:
            pt["batch_unsupported"] = str(exc) or "no batch API"
        points.append(pt)
        print(
            f"[{ad.system}] ef={ef} recall={pt['recall']:.4f} "
            f"qps1={pt['qps_single']:.0f} qpsB={pt.get('qps_batch', 0):.0f}",
            flush=True,
        )
    return {"status": "ok", "points": points, "ef_at_target": ef_at_target(points)}


def ef_at_target(points: list[dict[str, Any]]) -> int | None:
    """The smallest swept ef whose single-query recall@10 reached the target (else largest)."""
    for p in points:
        if p["recall"] >= RECALL_TARGET:
            return p["ef"]  # type: ignore[no-any-return]
    return points[-1]["ef"] if points else None  # type: ignore[no-any-return]


def case_filtered(ad: Adapter, ctx: RunContext, ef: Any = None) -> dict[str, Any]:
    """Every filtered case, one query per call, at ``ef`` (default: the sweep's
    ``ef_at_target``, the first swept ef reaching recall@10 >= 0.95 unfiltered; an
    explicit ``ef`` must be one of the swept values, whose unfiltered point is the
    reference for ``qps_vs_unfiltered``)."""
    data, reps = ctx.data, ctx.args.repeats
    sweep = ctx.result["cases"].get("sweep", {})
    if sweep.get("status") != "ok":
        raise RuntimeError("needs the sweep case")
    if ef is None:
        ef = sweep["ef_at_target"]
    ref = next(p for p in sweep["points"] if p["ef"] == ef)
    n = ref["n_queries"]
    qs = np.ascontiguousarray(data.queries[:n])
    ad.set_ef(ef)
    out = []
    for case in data.cases:
        row: dict[str, Any] = {"case": case.id, "predicate": case.predicate, "ef": ef}
        try:
            flt = ad.translate_filter(case)
            nf = _calibrate_filtered(ad, ctx, flt, n)
            qf = qs[:nf]
            times, res = _time_passes(
                lambda flt=flt, qf=qf: [ad.search_filtered(q, K, flt) for q in qf], reps
            )
            hits = hits_per_query(data.base, qf, res, case.gt_sims[:nf], mask=case.mask)
            row.update(
                status="ok",
                n_queries=nf,
                selectivity=float(case.mask.mean()),
                recall=sum(hits) / (K * nf),
                # per query, so a system's recall can be compared on another's prefix
                hits_per_query=hits,
                times_s=times,
                qps=nf / median(times),
                unfiltered_qps_same_ef=ref["qps_single"],
                full_results=float(np.mean([len(r) >= K for r in res])),
            )
            row["qps_vs_unfiltered"] = row["qps"] / ref["qps_single"]
            print(
                f"[{ad.system}] filter {case.id}: recall={row['recall']:.4f} qps={row['qps']:.0f}",
                flush=True,
            )
        except NotImplementedError as exc:
            row.update(status="unsupported", error=str(exc))
        except Exception as exc:  # a failing case is reported, the others still run
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        out.append(row)
    return {"status": "ok", "ef": ef, "cases": out}


def case_cold_open(ad: Adapter, ctx: RunContext) -> dict[str, Any]:
    runs = []
    for _ in range(ctx.args.cold_repeats):
        cmd = [
            sys.executable,
            sys.argv[0],
            "--cold-open-child",
            "--data",
            ctx.args.data,
            "--store",
            ctx.store,
            "--out",
            "-",
        ]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"cold-open child failed: {proc.stderr[-2000:]}")
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        child["process_wall_s"] = wall
        runs.append(child)
    keys = (
        "import_s",
        "open_s",
        "first_query_s",
        "open_first_query_s",
        "process_wall_s",
        "hwm_rss_bytes",
    )
    out: dict[str, Any] = {"status": "ok", "runs": runs}
    for k in keys:
        out[k] = median([r[k] for r in runs])
    out["first_query_correct_ids"] = runs[0]["correct"]
    return out


def cold_open_child(ad: Adapter, args: argparse.Namespace) -> None:
    d = Path(args.data)
    q = np.load(d / "queries.f32.npy", mmap_mode="r")[0].copy()
    gt = np.load(d / "gt.i32.npy", mmap_mode="r")[0, :K]
    dim = int(q.shape[0])
    t0 = time.perf_counter()
    ad.import_lib()
    t1 = time.perf_counter()
    ad.open(args.store, dim)
    t2 = time.perf_counter()
    res = ad.search(q, K)
    t3 = time.perf_counter()
    print(
        json.dumps(
            {
                "import_s": t1 - t0,
                "open_s": t2 - t1,
                "first_query_s": t3 - t2,
                "open_first_query_s": t3 - t1,
                "correct": len(set(res) & set(gt.tolist())),
                "hwm_rss_bytes": rss_bytes("VmHWM"),
            }
        )
    )


def case_footprint(ad: Adapter, ctx: RunContext) -> dict[str, Any]:
    return {
        "status": "ok",
        "disk": dir_bytes(ctx.store),
        "peak_rss_bytes": rss_bytes("VmHWM"),
        "baseline_rss_bytes": ctx.result["baseline_rss_bytes"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Run one system's benchmark cases.")
    p.add_argument("--data", required=True, help="prepared data directory (bench/data.py)")
    p.add_argument("--store", required=True, help="directory for the system's files")
    p.add_argument("--out", required=True, help="result JSON path ('-' = stdout)")
    p.add_argument("--mode", default="quick")
    p.add_argument("--efs", default="16,32,64,128", type=lambda s: [int(x) for x in s.split(",")])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cold-repeats", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=1000)
    p.add_argument("--pass-budget-s", type=float, default=20.0)
    p.add_argument("--min-queries", type=int, default=100)
    p.add_argument("--cases", default="ingest,sweep,filtered,cold_open,footprint")
    p.add_argument("--extra", default="", help="comma list of system-specific extra cases")
    p.add_argument("--cold-open-child", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


CASES = {
    "ingest": case_ingest,
    "sweep": case_sweep,
    "filtered": case_filtered,
    "cold_open": case_cold_open,
    "footprint": case_footprint,
}


def main(ad: Adapter, argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cold_open_child:
        cold_open_child(ad, args)
        return 0
    result: dict[str, Any] = {
        "system": ad.system,
        "status": "ok",
        "mode": args.mode,
        "cases": {},
        "started_at": time.time(),
        "interpreter": sys.executable,
    }
    try:
        result["versions"] = ad.versions()
        ad.import_lib()
        result["params"] = ad.params()
        result["notes"] = ad.notes()
        data = Dataset(args.data)
        result["n_base"], result["n_queries"] = int(data.base.shape[0]), int(data.queries.shape[0])
        result["baseline_rss_bytes"] = rss_bytes()
        ctx = RunContext(args, data, args.store, result)
        wanted = [c for c in args.cases.split(",") if c]
        closed = False
        for name in wanted:
            if name in ("cold_open", "footprint") and not closed:
                ad.close()  # both measure the closed, persisted store
                closed = True
            try:
                result["cases"][name] = CASES[name](ad, ctx)
            except NotImplementedError as exc:
                result["cases"][name] = {"status": "unsupported", "error": str(exc)}
            except Exception as exc:
                traceback.print_exc()
                result["cases"][name] = {
                    "status": "failed",
                    "error": f"{type(exc).__name__}: {exc}",
                }
                if name == "ingest":  # nothing else can run without the data in
                    result["status"] = "failed"
                    result["error"] = result["cases"][name]["error"]
                    break
        if result["status"] == "ok":
            result["cases"].update(ad.extra_cases(ctx))
    except Exception as exc:
        traceback.print_exc()
        result["status"] = "failed"
        result["error"] = f"{type(exc).__name__}: {exc}"
    result["finished_at"] = time.time()
    text = json.dumps(result, indent=1, default=_json_default)
    if args.out == "-":
        print(text)
    else:
        Path(args.out).write_text(text)
    return 0 if result["status"] == "ok" else 1


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o).__name__)


def fsync_tree(path: str | Path) -> None:
    """fsync every file and directory below ``path`` (durability step for raw indexes)."""
    p = Path(path)
    for x in [p, *p.rglob("*")]:
        fd = os.open(x, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
