"""Quantised graphs vs raw faiss, and ingest until fully HNSW-indexed (issue 16).

    python -m bench.quantization                                  # 50k and 100k, all kinds
    python -m bench.quantization --sizes 50000 --kinds sq8 --rounds 3

On the pypi-minilm set (384-d, cosine; ``/work/shared/datasets/pypi-minilm``, read-only;
this benchmark reads it in place), for each size (the first N base rows) and each
``quantization``:

* **ingest until fully HNSW-indexed**: ``upsert`` in batches of 1,000 (durability
  ``fsync``, no metadata), then ``compact()``; against the build of raw faiss
  ``IndexHNSWFlat`` over the same rows with the same m / ef_construction and the same
  OpenMP threads, timed in this process before (once per size, or before each kind with
  ``--rebuild-faiss``) (``ingest_ratio``);
* **recall@10 and single-query QPS** over an ef sweep, KeelDB's default call against raw
  faiss ``IndexHNSWFlat`` (one query per call both), passes interleaved round by round so
  both see the same load; the ratio is the median of per-round ratios, at the first swept
  ef where both reach recall@10 0.95;
* **resident bytes per vector** after the sweep (``Collection.stats()``: the graph part,
  the float32 vectors' mapped pages faulted in by re-scoring, and every part), beside
  raw faiss ``IndexHNSWFlat``'s in-memory bytes per vector.

Ground truth is exact (numpy, float32) over the rows used. Results: printed, and JSON in
``bench/results/quantization.json`` (``docs/benchmarks.md`` section "Quantised graphs").
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

DATA = Path("/work/shared/datasets/pypi-minilm")
RESULTS = Path(__file__).resolve().parent / "results"
K = 10
TARGET_RECALL = 0.95


def load(rows: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(base rows, queries, exact top-10 row numbers), unit float32."""
    base = np.load(DATA / "base.f16.npy")[:rows].astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    qs = np.load(DATA / "queries.f16.npy")[:queries].astype(np.float32)
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)
    gt = np.empty((len(qs), K), dtype=np.int64)
    for s in range(0, len(qs), 100):
        sims = qs[s : s + 100] @ base.T
        top = np.argpartition(-sims, K, axis=1)[:, :K]
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1)
        gt[s : s + 100] = np.take_along_axis(top, order, axis=1)
    return base, qs, gt


def recall(found: list[list[int]], gt: np.ndarray) -> float:
    """Mean recall@10 of ``found`` (row numbers per query) against ``gt``."""
    hits = [len(set(f[:K]) & set(g.tolist())) for f, g in zip(found, gt, strict=True)]
    return float(np.mean(hits)) / K


def faiss_build(base: np.ndarray, m: int, efc: int) -> tuple[Any, float]:
    index = faiss.IndexHNSWFlat(base.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    t0 = time.perf_counter()
    index.add(base)
    return index, time.perf_counter() - t0


def keeldb_ingest(
    path: str, base: np.ndarray, kind: str, m: int, efc: int
) -> tuple[Any, Any, float]:
    """Create, upsert in batches of 1,000, compact; returns (db, collection, seconds)."""
    import keeldb

    t0 = time.perf_counter()
    db = keeldb.open(path)
    col = db.create_collection("c", dim=base.shape[1], m=m, ef_construction=efc, quantization=kind)
    ids = [str(i) for i in range(len(base))]
    for s in range(0, len(base), 1000):
        col.upsert(ids[s : s + 1000], base[s : s + 1000])
    col.compact()
    return db, col, time.perf_counter() - t0


def sweep(
    col: Any, index: Any, qs: np.ndarray, gt: np.ndarray, efs: list[int], rounds: int
) -> list[dict[str, Any]]:
    """Per ef: recall and single-query QPS of both, interleaved round by round."""
    points = []
    for ef in efs:
        params = faiss.SearchParametersHNSW()
        params.efSearch = ef

        def k_run(ef: int = ef) -> list[list[int]]:
            return [[int(h.id) for h in col.search(q, k=K, ef=ef)] for q in qs]

        def f_run(params: Any = params) -> list[list[int]]:
            return [index.search(q[None, :], K, params=params)[1][0].tolist() for q in qs]

        k_times, f_times = [], []
        k_found = f_found = None
        for _ in range(rounds):
            t0 = time.perf_counter()
            k_found = k_run()
            k_times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            f_found = f_run()
            f_times.append(time.perf_counter() - t0)
        assert k_found is not None and f_found is not None
        points.append(
            {
                "ef": ef,
                "keeldb_recall": recall(k_found, gt),
                "faiss_recall": recall(f_found, gt),
                "keeldb_qps": len(qs) / statistics.median(k_times),
                "faiss_qps": len(qs) / statistics.median(f_times),
                "qps_ratio": statistics.median(
                    f / k for k, f in zip(k_times, f_times, strict=True)
                ),
            }
        )
        p = points[-1]
        print(
            f"    ef={ef:4d} recall {p['keeldb_recall']:.4f} vs {p['faiss_recall']:.4f}  "
            f"QPS {p['keeldb_qps']:8.0f} vs {p['faiss_qps']:8.0f}  ratio {p['qps_ratio']:.2f}x",
            flush=True,
        )
    return points


def first_common(points: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first point where both reach the target recall."""
    for p in points:
        if p["keeldb_recall"] >= TARGET_RECALL and p["faiss_recall"] >= TARGET_RECALL:
            return p
    return None


def footprint(col: Any, rows: int) -> dict[str, Any]:
    """Resident bytes per vector of the HNSW segments from ``stats()``: the graph part,
    the float32 vectors' part (pages faulted in by re-scoring), every part; the
    memtable (empty after compact(), its arrays allocated for the next writes) apart."""
    st = col.stats()
    segs = [s for s in st.segments if s.kind == "hnsw"]
    parts: dict[str, list[int]] = {}
    for seg in segs:
        for name, p in seg.parts.items():
            have = parts.setdefault(name, [0, 0])
            have[0] += p.resident_bytes
            have[1] += p.disk_bytes
    resident = sum(s.resident_bytes for s in segs)
    graph = parts.get("graph", [0, 0])[0]
    vectors = parts.get("vectors", [0, 0])[0]
    return {
        "parts": parts,
        "graph_resident_per_vector": graph / rows,
        "vectors_resident_per_vector": vectors / rows,
        "resident_per_vector": resident / rows,
        "resident_without_vectors_per_vector": (resident - vectors) / rows,
        "memtable_resident_bytes": st.resident_bytes - resident,
        "disk_per_vector": st.disk_bytes / rows,
    }


def save(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` as JSON (after every kind, so a run cut short keeps its figures)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))


def run_size(rows: int, args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    base, qs, gt = load(rows, args.queries)
    print(
        f"== {rows} rows x {base.shape[1]}, {len(qs)} queries, "
        f"threads {faiss.omp_get_max_threads()}"
    )
    out: dict[str, Any] = {"rows": rows, "kinds": {}}
    results["sizes"].append(out)
    index, faiss_s = faiss_build(base, args.m, args.ef_construction)
    faiss_bytes = faiss.serialize_index(index).nbytes
    for kind in args.kinds:
        if args.rebuild_faiss and kind != args.kinds[0]:
            del index
            index, faiss_s = faiss_build(base, args.m, args.ef_construction)
        with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
            db, col, keel_s = keeldb_ingest(tmp, base, kind, args.m, args.ef_construction)
            print(
                f"  {kind}: indexed in {keel_s:.1f} s vs faiss IndexHNSWFlat build {faiss_s:.1f} s "
                f"= {keel_s / faiss_s:.2f}x",
                flush=True,
            )
            col.search(qs[0], k=K)
            points = sweep(col, index, qs, gt, args.efs, args.rounds)
            common = first_common(points)
            fp = footprint(col, rows)
            db.close()
        fp["faiss_flat_bytes_per_vector"] = faiss_bytes / rows
        print(
            f"  {kind}: resident/vector graph {fp['graph_resident_per_vector']:.0f} B, "
            f"all but float32 vectors {fp['resident_without_vectors_per_vector']:.0f} B, "
            f"float32 vectors faulted in {fp['vectors_resident_per_vector']:.0f} B; "
            f"raw faiss IndexHNSWFlat {fp['faiss_flat_bytes_per_vector']:.0f} B",
            flush=True,
        )
        if common is not None:
            print(
                f"  {kind}: at ef={common['ef']} (first where both reach 0.95): "
                f"{common['qps_ratio']:.2f}x"
            )
        out["kinds"][kind] = {
            "keeldb_indexed_s": keel_s,
            "faiss_build_s": faiss_s,
            "ingest_ratio": keel_s / faiss_s,
            "points": points,
            "first_common": common,
            "footprint": fp,
        }
        save(results, args.out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="50000,100000")
    p.add_argument("--kinds", default="sq8,fp16,none")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--efs", default="16,24,32,48,64,96")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--ef-construction", type=int, default=200)
    p.add_argument(
        "--rebuild-faiss",
        action="store_true",
        help="build raw faiss again before each kind (ingest ratios timed side by side)",
    )
    p.add_argument("--workdir", default=None, help="where the collections are built")
    p.add_argument("--out", type=Path, default=RESULTS / "quantization.json")
    args = p.parse_args(argv)
    args.kinds = [k for k in args.kinds.split(",") if k]
    args.efs = [int(e) for e in args.efs.split(",")]
    if not (DATA / "base.f16.npy").exists():
        print(f"SKIPPED: the data set is not at {DATA}")
        return 0
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "params": {
            "m": args.m,
            "ef_construction": args.ef_construction,
            "queries": args.queries,
            "rebuild_faiss": args.rebuild_faiss,
        },
        "sizes": [],
    }
    for n in args.sizes.split(","):
        run_size(int(n), args, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
