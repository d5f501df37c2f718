"""Search under load: every plan's single-query and batch QPS with two CPU-burning
processes running, as a ratio of the same measurement without them, beside raw faiss.

Uses the pypi collection of ``bench/predicates.py`` (100,000 x 384, cosine, one HNSW
segment; built there on first use). Cases: unfiltered, and filters chosen to land on each
filtered plan (the plan KeelDB used is printed: the planner decides, not this script);
and a collection of the first 5,000 rows, one flat segment, whose searches take the exact
plan (raw faiss there: ``IndexFlatIP`` with its default threads).
Raw faiss, same process: KeelDB's own graph searched through faiss's Python API with its
default OpenMP threads (unfiltered, and with an ``IDSelectorBitmap`` for the filters),
and, for the rarer filters, an ``IndexScalarQuantizer`` fp16 flat index over just the
matching rows (the scan behind KeelDB's compact plan, called as faiss is by default).

Rounds alternate idle and loaded (``--rounds`` each; the burners are started before each
loaded round and stopped after it); figures are medians; ratios loaded / idle.

    python -m bench load [--queries 300] [--rounds 3] [--ef 48]

Targets (issue 16): every KeelDB plan >= 0.5x its idle single-query QPS and >= 0.4x its
idle batch QPS. Results: ``bench/results/under_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench.predicate_family import FAMILIES
from bench.predicates import DATASET, RESULTS, K, open_collection

CASES: tuple[tuple[str, Any], ...] = (
    ("unfiltered", None),
    ("month == 2017-11 (0.2 %)", {"month": "2017-11"}),
    ("rank exists (1.7 %)", {"rank": {"$exists": True}}),
    ("year in 2019, 2020 (8.6 %)", {"year": {"$in": [2019, 2020]}}),
    ("year 2019-2025 (49 %)", {"year": {"$gte": 2019, "$lte": 2025}}),
    ("version < 0.5 and year != 2026 (28 %)", {"version": {"$lt": "0.5"}, "year": {"$ne": 2026}}),
)
# A collection small enough to stay one flat segment (below ``hnsw_min_rows``): its
# single queries take the exact plan, a scan of every row.
FLAT_CASE = "flat 5,000 rows, unfiltered (exact scan)"
FLAT_ROWS = 5_000
BURN = "while True:\n    pass\n"


def start_burners(n: int = 2) -> list[subprocess.Popen[bytes]]:
    """``n`` processes each spinning one core."""
    return [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(n)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def plan_of(col: Any, q: np.ndarray, ef: int, spec: Any, batch: np.ndarray | None = None) -> str:
    seen: list[Any] = []
    col.on_search(seen.append)
    try:
        if batch is None:
            col.search(q, K, ef=ef, filter=spec)
        else:
            col.search_batch(batch, K, ef=ef, filter=spec)
    finally:
        col.off_search(seen.append)
    return ",".join(sorted(set(seen[0].plans.values())))


def measure(
    col: Any, graph: Any, masks: dict[str, np.ndarray], qs: np.ndarray, ef: int
) -> dict[str, dict[str, float]]:
    """QPS of every case, KeelDB and raw faiss, single and batch (one pass each)."""
    import faiss

    out: dict[str, dict[str, float]] = {}
    for name, spec in CASES:
        r: dict[str, float] = {}
        t0 = time.perf_counter()
        for q in qs:
            col.search(q, K, ef=ef, filter=spec)
        r["keeldb_single"] = len(qs) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        col.search_batch(qs, K, ef=ef, filter=spec)
        r["keeldb_batch"] = len(qs) / (time.perf_counter() - t0)
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef
        sel = None
        if spec is not None:
            bitmap = np.packbits(masks[name], bitorder="little")
            sel = faiss.IDSelectorBitmap(len(masks[name]), faiss.swig_ptr(bitmap))
            params.sel = sel
        t0 = time.perf_counter()
        for i in range(len(qs)):
            graph.search(qs[i : i + 1], K, params=params)
        r["faiss_single"] = len(qs) / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        graph.search(qs, K, params=params)
        r["faiss_batch"] = len(qs) / (time.perf_counter() - t0)
        del sel
        out[name] = r
    return out


def measure_flat(col: Any, flat: Any, qs: np.ndarray) -> dict[str, dict[str, float]]:
    """:func:`measure` for the flat collection: KeelDB, and raw faiss ``IndexFlatIP`` over
    the same rows with its default OpenMP threads."""
    r: dict[str, float] = {}
    t0 = time.perf_counter()
    for q in qs:
        col.search(q, K)
    r["keeldb_single"] = len(qs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    col.search_batch(qs, K)
    r["keeldb_batch"] = len(qs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(len(qs)):
        flat.search(qs[i : i + 1], K)
    r["faiss_single"] = len(qs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    flat.search(qs, K)
    r["faiss_batch"] = len(qs) / (time.perf_counter() - t0)
    return {FLAT_CASE: r}


def flat_collection(base: np.ndarray, directory: str) -> tuple[Any, Any, Any]:
    """(database, collection, faiss IndexFlatIP) over the first :data:`FLAT_ROWS` rows."""
    import faiss

    import keeldb

    rows = np.ascontiguousarray(base[:FLAT_ROWS], dtype=np.float32)
    db = keeldb.open(directory, durability="none")
    col = db.create_collection("flat", dim=rows.shape[1], metric="cosine")
    col.upsert([str(i) for i in range(len(rows))], rows)
    col.compact()
    kinds = [s.kind for s in col.stats().segments if s.rows]
    if kinds != ["flat"]:
        raise SystemExit(f"the flat collection is not one flat segment: {kinds}")
    norm = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    index = faiss.IndexFlatIP(rows.shape[1])
    index.add(norm)
    return db, col, index


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ef", type=int, default=48)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    fam = FAMILIES["pypi"](DATASET, 100_000, args.queries)
    db, col = open_collection(fam)
    scratch = tempfile.TemporaryDirectory()
    flat_db, flat_col, flat_index = flat_collection(fam.base, scratch.name)
    try:
        from bench.predicate_family import Field

        fields: dict[str, Field] = {f.name: f for f in fam.fields}
        masks = {name: _mask(fields, spec) for name, spec in CASES if spec is not None}
        for name, spec in CASES:
            if spec is not None and col.count(spec) != int(masks[name].sum()):
                raise SystemExit(f"{name}: engine count disagrees with the bench's mask")
        graph = col._state.segments[0].hnsw.index
        qs = fam.queries
        for _ in range(5):  # warm the filters (masks cached, plans settled)
            measure(col, graph, masks, qs[:20], args.ef)
        measure_flat(flat_col, flat_index, qs[:20])
        plans = {
            name: (plan_of(col, qs[0], args.ef, spec), plan_of(col, qs[0], args.ef, spec, qs))
            for name, spec in CASES
        }
        plans[FLAT_CASE] = (
            plan_of(flat_col, qs[0], args.ef, None),
            plan_of(flat_col, qs[0], args.ef, None, qs),
        )
        idle: list[dict[str, dict[str, float]]] = []
        loaded: list[dict[str, dict[str, float]]] = []
        for rnd in range(args.rounds):
            idle.append(measure(col, graph, masks, qs, args.ef))
            idle[-1].update(measure_flat(flat_col, flat_index, qs))
            burners = start_burners()
            try:
                time.sleep(0.5)
                loaded.append(measure(col, graph, masks, qs, args.ef))
                loaded[-1].update(measure_flat(flat_col, flat_index, qs))
            finally:
                stop(burners)
            print(f"  round {rnd + 1}/{args.rounds} done", flush=True)
    finally:
        db.close()
        flat_db.close()
        scratch.cleanup()
    rows = []
    print(
        f"{'case':40} {'plan (single / batch)':45} "
        + " ".join(f"{k:>13}" for k in ("KeelDB 1q", "KeelDB batch", "faiss 1q", "faiss batch"))
    )
    for name in [*(c[0] for c in CASES), FLAT_CASE]:
        row: dict[str, Any] = {
            "case": name,
            "plan_single": plans[name][0],
            "plan_batch": plans[name][1],
        }
        for key in ("keeldb_single", "keeldb_batch", "faiss_single", "faiss_batch"):
            i = statistics.median(r[name][key] for r in idle)
            lo = statistics.median(r[name][key] for r in loaded)
            row[key] = {"idle_qps": i, "loaded_qps": lo, "ratio": lo / i}
        rows.append(row)
        print(
            f"{name:40} {(plans[name][0] + ' / ' + plans[name][1])[:45]:45} "
            + " ".join(
                f"{row[k]['ratio']:5.2f}x {row[k]['loaded_qps']:6,.0f}"
                for k in ("keeldb_single", "keeldb_batch", "faiss_single", "faiss_batch")
            ),
            flush=True,
        )
    ok = all(r["keeldb_single"]["ratio"] >= 0.5 and r["keeldb_batch"]["ratio"] >= 0.4 for r in rows)
    print(
        "  targets (>= 0.5x single, >= 0.4x batch for every KeelDB plan): "
        + ("PASS" if ok else "FAIL")
    )
    out = {
        "ef": args.ef,
        "queries": len(qs),
        "rounds": args.rounds,
        "cases": rows,
        "pass": ok,
        "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "loadavg": os.getloadavg(),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "under_load.json").write_text(json.dumps(out, indent=1))
    return 0


def _mask(fields: dict[str, Any], spec: dict[str, Any]) -> np.ndarray:
    """The bench's own mask of the few filter shapes in :data:`CASES` (implicit AND of
    field conditions: equality, $in, $exists, $ne and ranges), computed independently of
    KeelDB's filter engine."""
    out = np.ones(len(next(iter(fields.values())).present), dtype=bool)
    for name, cond in spec.items():
        f = fields[name]
        ops = cond if isinstance(cond, dict) else {"$eq": cond}
        for op, v in ops.items():
            vals, present = f.values, f.present
            if f.vocab is not None and op != "$exists":
                # strings as codes: compare against the literal's position in the vocabulary
                lits = v if isinstance(v, list) else [v]
                pos = np.searchsorted(f.vocab, np.array(lits, dtype=f.vocab.dtype))
                hit = [
                    int(p) if p < len(f.vocab) and f.vocab[p] == lit else None
                    for p, lit in zip(pos, lits, strict=True)
                ]
                v = hit if isinstance(v, list) else hit[0]
                if op in ("$lt", "$gte"):  # codes of absent strings: their insertion point
                    v = int(pos[0])
            if op == "$eq":
                m = present & (vals == v)
            elif op == "$ne":
                m = ~(present & (vals == v))
            elif op == "$in":
                m = present & np.isin(vals, [x for x in v if x is not None])
            elif op == "$exists":
                m = present if v else ~present
            elif op == "$gte":
                m = present & (vals >= v)
            elif op == "$lte":
                m = present & (vals <= v)
            elif op == "$lt":
                m = present & (vals < v)
            else:
                raise ValueError(op)
            out &= m
    return out


if __name__ == "__main__":
    raise SystemExit(main())
