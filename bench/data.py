"""Prepare the benchmark data once per mode under ``bench/.work/<mode>/``.

The data set (``../shared/datasets/pypi-minilm``) ships float16 vectors; every system gets
the same float32 copy, re-normalised exactly as the data set's ground truth was computed.

- ``full``: all 100,000 base rows and 1,000 queries; ground truth from the data set.
- ``quick``: the first ``QUICK_BASE`` base rows and ``QUICK_QUERIES`` queries (the data set
  is a random permutation, so a prefix is a random sample); exact ground truth recomputed
  with numpy on that subset, filtered ground truth too.

Files written: ``base.f32.npy``, ``queries.f32.npy``, ``gt.i32.npy`` (top-100),
``gt_sim.f32.npy``, ``meta.jsonl``, ``filters.json`` (cases with their spec) and
``filtered_gt.npz`` (per case: ``<id>_mask``, ``<id>_ids``, ``<id>_sims``).
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DATASET = Path(os.environ.get("KEELDB_BENCH_DATASET", REPO.parent / "shared/datasets/pypi-minilm"))
WORK = REPO / "bench" / ".work"
QUICK_BASE = 10_000
QUICK_QUERIES = 200
GT_DEPTH = 100
FORMAT_VERSION = 1  # bump when the files written here change


def spec_mask(spec: dict[str, Any], metas: list[dict[str, Any]]) -> np.ndarray:
    """Evaluate a data-set filter spec (``filters.json``) over metadata rows."""
    field, op = spec["field"], spec["op"]
    col = [m.get(field) for m in metas]
    if op == "eq":
        return np.fromiter((v is not None and v == spec["value"] for v in col), bool, len(col))
    if op == "in":
        allowed = set(spec["value"])
        return np.fromiter((v is not None and v in allowed for v in col), bool, len(col))
    if op == "is_not_null":
        return np.fromiter((v is not None for v in col), bool, len(col))
    raise ValueError(f"unknown filter op {op!r} in data set spec")


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x)


def exact_topk(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k by inner product (== cosine on normalised rows), best first."""
    ids = np.empty((len(queries), k), dtype=np.int32)
    sims = np.empty((len(queries), k), dtype=np.float32)
    for s in range(0, len(queries), 256):
        block = queries[s : s + 256] @ base.T
        kk = min(k, base.shape[0])
        part = np.argpartition(-block, kk - 1, axis=1)[:, :kk]
        psims = np.take_along_axis(block, part, axis=1)
        order = np.argsort(-psims, axis=1, kind="stable")
        ids[s : s + 256] = np.take_along_axis(part, order, axis=1)
        sims[s : s + 256] = np.take_along_axis(psims, order, axis=1)
    return ids, sims


def _read_meta(n: int | None) -> list[dict[str, Any]]:
    out = []
    with gzip.open(DATASET / "meta.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line))
            if n is not None and len(out) >= n:
                break
    return out


def prepare(mode: str, force: bool = False) -> Path:
    """Write the mode's files (once; ``force`` rewrites) and return their directory."""
    if mode not in ("quick", "full"):
        raise ValueError(f"mode must be quick or full, not {mode!r}")
    out = WORK / mode
    stamp = out / "READY"
    if stamp.exists() and not force and stamp.read_text().strip() == str(FORMAT_VERSION):
        return out
    out.mkdir(parents=True, exist_ok=True)
    n_base = QUICK_BASE if mode == "quick" else None
    n_q = QUICK_QUERIES if mode == "quick" else None
    base = _normalise(np.load(DATASET / "base.f16.npy")[:n_base])
    queries = _normalise(np.load(DATASET / "queries.f16.npy")[:n_q])
    metas = _read_meta(n_base)
    filters = json.loads((DATASET / "filters.json").read_text())
    arrays: dict[str, np.ndarray] = {}
    cases = []
    if mode == "full":
        gt_ids = np.load(DATASET / "gt.i32.npy")
        gt_sims = np.load(DATASET / "gt_dist.f32.npy")
        gtf = {c["id"]: c for c in json.loads((DATASET / "gt_filtered.json").read_text())["cases"]}
    else:
        gt_ids, gt_sims = exact_topk(base, queries, GT_DEPTH)
    for c in filters["cases"]:
        mask = spec_mask(c["spec"], metas)
        if mode == "full":
            if int(mask.sum()) != c["n_matching"]:
                raise ValueError(
                    f"{c['id']}: {mask.sum()} rows match, data set says {c['n_matching']}"
                )
            ids = np.asarray(gtf[c["id"]]["neighbors"], dtype=np.int32)
            sims = np.asarray(gtf[c["id"]]["similarities"], dtype=np.float32)
        else:
            sub = np.flatnonzero(mask)
            local, sims = exact_topk(base[sub], queries, 10)
            ids = sub[local].astype(np.int32)
        arrays[f"{c['id']}_mask"] = mask
        arrays[f"{c['id']}_ids"] = ids
        arrays[f"{c['id']}_sims"] = sims
        cases.append(
            {
                "id": c["id"],
                "predicate": c["predicate"],
                "spec": c["spec"],
                "n_matching": int(mask.sum()),
                "selectivity": float(mask.mean()),
            }
        )
    np.save(out / "base.f32.npy", base)
    np.save(out / "queries.f32.npy", queries)
    np.save(out / "gt.i32.npy", gt_ids.astype(np.int32))
    np.save(out / "gt_sim.f32.npy", gt_sims.astype(np.float32))
    np.savez(out / "filtered_gt.npz", **arrays)
    with open(out / "meta.jsonl", "w", encoding="utf-8") as f:
        for m in metas:
            f.write(json.dumps(m) + "\n")
    info = {
        "mode": mode,
        "dataset": str(DATASET),
        "n_base": int(base.shape[0]),
        "n_queries": int(queries.shape[0]),
        "dim": int(base.shape[1]),
        "ground_truth": "data set files" if mode == "full" else "recomputed exactly with numpy",
        "cases": cases,
    }
    (out / "filters.json").write_text(json.dumps(info, indent=1))
    stamp.write_text(str(FORMAT_VERSION))
    return out
