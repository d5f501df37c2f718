"""Engine-level text search: ingest with documents, text_search / hybrid_search quality and QPS.

Reads ``../shared/datasets/scifact`` and ``../shared/datasets/pypi-minilm`` (not
available in CI; a data set that is absent is skipped). Every speed figure is printed
with a baseline measured in the same run, interleaved and repeated (the machine is
shared, so absolute figures are noisy):

- SciFact (5,183 abstracts, 809 claims): ingest with documents (fsync) vs the same
  vectors without documents; ``text_search`` nDCG@10 and single-query QPS vs the
  library-level ``bm25_search`` over one sealed unit; ``hybrid_search`` nDCG@10 and QPS vs
  plain vector ``search`` (target >= 0.5x).
- pypi (100,000 summaries, 1,000 query texts): ingest with documents and vectors, fsync,
  vs the same without documents (target >= 20,000 docs/s); ``text_search`` single-query
  QPS (target >= 500/s) with the rows sealed into segments and with them all in flight;
  ``hybrid_search`` QPS vs plain vector ``search`` (HNSW) on the compacted collection.

Usage: ``python -m bench text`` (``--skip-pypi``, ``--skip-scifact``, ``--repeats N``,
``--batch N``). Results: ``bench/results/text_engine.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keeldb  # noqa: E402
from keeldb.text import Analyzer, SealedPostings, bm25_search  # noqa: E402
from text_eval import RESULTS, SHARED, load_scifact, mean_ndcg  # noqa: E402


def _rate(fn: Callable[[], int]) -> float:
    """Items per second of one call of ``fn`` (which returns how many items it did)."""
    t = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t)


# Rates per CPU second of the whole process (all threads), by label: on this shared
# machine (run queues of 20-40 on 2 cores) wall-clock rates mostly measure the other jobs.
CPU: dict[str, list[float]] = {}


def _qps(fn: Callable[[Any], Any], items: Sequence[Any], label: str, min_s: float = 1.0) -> float:
    """Single-query rate of ``fn`` over ``items`` (cycled for at least ``min_s``), wall
    clock; the rate per process CPU second goes to ``CPU[label]``."""
    done = 0
    t, c = time.perf_counter(), time.process_time()
    while True:
        for x in items:
            fn(x)
        done += len(items)
        el = time.perf_counter() - t
        if el >= min_s:
            CPU.setdefault(label, []).append(done / (time.process_time() - c))
            return done / el


def _ingest(
    ids: list[str], vecs: np.ndarray, texts: list[str] | None, batch: int, compact: bool = False
) -> tuple[float, bool]:
    """Docs/s of upserting everything (fsync durability) into a fresh collection, and
    whether the last document was found by ``text_search`` right after its upsert."""
    with tempfile.TemporaryDirectory() as d, keeldb.open(d) as db:
        col = db.create_collection("c", dim=vecs.shape[1])
        n = len(ids)
        t, c = time.perf_counter(), time.process_time()
        for s in range(0, n, batch):
            docs = None if texts is None else texts[s : s + batch]
            col.upsert(ids[s : s + batch], vecs[s : s + batch], documents=docs)
        rate = n / (time.perf_counter() - t)
        label = f"ingest {len(ids)} {'with' if texts is not None else 'without'} documents"
        CPU.setdefault(label, []).append(n / (time.process_time() - c))
        fresh = True
        if texts is not None:
            hits = col.text_search(texts[-1], 3)
            fresh = ids[-1] in [h.id for h in hits]
    return rate, fresh


def _ingest_pairs(
    ids: list[str], vecs: np.ndarray, texts: list[str], batch: int, repeats: int
) -> tuple[list[float], list[float], bool]:
    """Ingest rates with documents and without (the baseline), interleaved ``repeats``
    times, and whether every fresh document was found right after its upsert."""
    with_docs, without, fresh_all = [], [], True
    for _ in range(repeats):
        r, fresh = _ingest(ids, vecs, texts, batch)
        with_docs.append(r)
        fresh_all &= fresh
        without.append(_ingest(ids, vecs, None, batch)[0])
    return with_docs, without, fresh_all


def _loaded(
    db: Any, name: str, ids: list[str], vecs: np.ndarray, texts: list[str], batch: int
) -> Any:
    """A new collection ``name`` of ``db`` holding every record with its document."""
    col = db.create_collection(name, dim=vecs.shape[1])
    for s in range(0, len(ids), batch):
        col.upsert(ids[s : s + batch], vecs[s : s + batch], documents=texts[s : s + batch])
    return col


def _median(xs: list[float]) -> float:
    return float(np.median(xs))


def scifact(out: dict[str, Any], repeats: int, batch: int) -> None:
    root = SHARED / "scifact"
    if not root.exists():
        print(f"skip scifact: {root} not found")
        return
    data = load_scifact(root)
    ids, texts, queries = data["ids"], data["texts"], data["queries"]
    vecs, qvecs = data["doc_vecs"], data["query_vecs"]
    every = list(range(len(queries)))
    with_docs, without, fresh_all = _ingest_pairs(ids, vecs, texts, batch, repeats)
    with tempfile.TemporaryDirectory() as d, keeldb.open(d) as db:
        col = _loaded(db, "scifact", ids, vecs, texts, batch)
        col.compact()
        runs = [[h.id for h in col.text_search(x, 10)] for x in queries]
        pairs = list(zip(queries, qvecs, strict=True))
        hyb = [[h.id for h in col.hybrid_search(x, 10, vector=v)] for x, v in pairs]
        sp = SealedPostings.build(Analyzer().tokenize_many(texts))
        an = Analyzer()
        text_q, lib_q, hyb_q, vec_q = [], [], [], []
        for _ in range(repeats):  # interleaved
            text_q.append(_qps(lambda x: col.text_search(x, 10), queries, "scifact text_search"))
            lib_q.append(_qps(lambda x: bm25_search([sp], an(x), 10), queries, "scifact lib"))
            hyb_q.append(
                _qps(lambda p: col.hybrid_search(p[0], 10, vector=p[1]), pairs, "scifact hybrid")
            )
            vec_q.append(_qps(lambda p: col.search(p[1], 10), pairs, "scifact vector search"))
    out["scifact"] = {
        "ingest_docs_per_s": _median(with_docs),
        "ingest_no_docs_per_s": _median(without),
        "fresh_found": fresh_all,
        "text_ndcg10": mean_ndcg(runs, data["rel"], every),
        "hybrid_ndcg10": mean_ndcg(hyb, data["rel"], every),
        "text_qps": _median(text_q),
        "lib_bm25_qps": _median(lib_q),
        "hybrid_qps": _median(hyb_q),
        "vector_qps": _median(vec_q),
        "hybrid_over_vector": _median([h / v for h, v in zip(hyb_q, vec_q, strict=True)]),
    }
    r = out["scifact"]
    print(
        f"scifact ingest (fsync, batches of {batch}): with documents "
        f"{r['ingest_docs_per_s']:,.0f} docs/s vs without {r['ingest_no_docs_per_s']:,.0f} "
        f"({r['ingest_docs_per_s'] / r['ingest_no_docs_per_s']:.2f}x); fresh document found "
        f"right after upsert: {r['fresh_found']}"
    )
    print(
        f"scifact text_search nDCG@10 {r['text_ndcg10']:.4f}; {r['text_qps']:,.0f} q/s vs "
        f"bm25_search on one unit {r['lib_bm25_qps']:,.0f} q/s "
        f"({r['text_qps'] / r['lib_bm25_qps']:.2f}x; target >= 2,000 q/s)"
    )
    print(
        f"scifact hybrid_search nDCG@10 {r['hybrid_ndcg10']:.4f}; {r['hybrid_qps']:,.0f} q/s "
        f"vs vector search {r['vector_qps']:,.0f} q/s ({r['hybrid_over_vector']:.2f}x, "
        "median of paired runs; target >= 0.5x)"
    )


def pypi(out: dict[str, Any], repeats: int, batch: int) -> None:
    root = SHARED / "pypi-minilm"
    if not root.exists():
        print(f"skip pypi: {root} not found")
        return
    texts = [json.loads(line)["text"] for line in gzip.open(root / "meta.jsonl.gz")]
    queries = [json.loads(line)["text"] for line in gzip.open(root / "queries.jsonl.gz")]
    vecs = np.load(root / "base.f16.npy").astype(np.float32)
    qvecs = np.load(root / "queries.f16.npy").astype(np.float32)
    ids = [f"p{i}" for i in range(len(texts))]
    with_docs, without, fresh_all = _ingest_pairs(ids, vecs, texts, batch, repeats)
    with tempfile.TemporaryDirectory() as d, keeldb.open(d) as db:
        col = _loaded(db, "pypi", ids, vecs, texts, batch)
        col.flush()
        units = len(col.stats().segments)
        live_q = _qps(lambda x: col.text_search(x, 10), queries, "pypi text_search (ingested)")
        col.compact()
        sp = SealedPostings.build(Analyzer().tokenize_many(texts))
        an = Analyzer()
        pairs = list(zip(queries, qvecs, strict=True))
        text_q, lib_q, hyb_q, vec_q = [], [], [], []
        for _ in range(repeats):  # interleaved
            text_q.append(_qps(lambda x: col.text_search(x, 10), queries, "pypi text_search"))
            lib_q.append(_qps(lambda x: bm25_search([sp], an(x), 10), queries, "pypi lib"))
            hyb_q.append(
                _qps(lambda p: col.hybrid_search(p[0], 10, vector=p[1]), pairs, "pypi hybrid")
            )
            vec_q.append(_qps(lambda p: col.search(p[1], 10), pairs, "pypi vector search"))
    out["pypi"] = {
        "ingest_docs_per_s": _median(with_docs),
        "ingest_no_docs_per_s": _median(without),
        "fresh_found": fresh_all,
        "text_qps_compacted": _median(text_q),
        "lib_bm25_qps": _median(lib_q),
        "text_qps_after_ingest": live_q,
        "units_after_ingest": units,
        "hybrid_qps": _median(hyb_q),
        "vector_qps": _median(vec_q),
        "hybrid_over_vector": _median([h / v for h, v in zip(hyb_q, vec_q, strict=True)]),
    }
    r = out["pypi"]
    print(
        f"pypi 100k ingest (fsync, batches of {batch}): with documents "
        f"{r['ingest_docs_per_s']:,.0f} docs/s vs without {r['ingest_no_docs_per_s']:,.0f} "
        f"({r['ingest_docs_per_s'] / r['ingest_no_docs_per_s']:.2f}x; target >= 20,000 "
        f"docs/s); fresh document found right after upsert: {r['fresh_found']}"
    )
    print(
        f"pypi 100k text_search: compacted {r['text_qps_compacted']:,.0f} q/s vs bm25_search "
        f"on one unit {r['lib_bm25_qps']:,.0f} q/s "
        f"({r['text_qps_compacted'] / r['lib_bm25_qps']:.2f}x); right after ingest "
        f"({r['units_after_ingest']} units) {r['text_qps_after_ingest']:,.0f} q/s "
        "(target >= 500 q/s)"
    )
    print(
        f"pypi 100k hybrid_search {r['hybrid_qps']:,.0f} q/s vs vector search (HNSW) "
        f"{r['vector_qps']:,.0f} q/s ({r['hybrid_over_vector']:.2f}x, median of paired runs; "
        "target >= 0.5x)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--skip-pypi", action="store_true")
    ap.add_argument("--skip-scifact", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    if not args.skip_scifact:
        scifact(out, args.repeats, args.batch)
    if not args.skip_pypi:
        pypi(out, args.repeats, args.batch)
    out["per_cpu_second"] = {k: _median(v) for k, v in CPU.items()}
    out["load_average"] = os.getloadavg()[0]
    print(f"rates per process CPU second (medians; load average {out['load_average']:.1f}):")
    for k, v in out["per_cpu_second"].items():
        print(f"  {k}: {v:,.0f}/s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text_engine.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
