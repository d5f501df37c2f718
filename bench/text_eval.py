"""Text-retrieval quality and speed of KeelDB's text components (issue 14).

Reads ``../shared/datasets/scifact`` and ``../shared/datasets/pypi-minilm`` (this
benchmark, not the tests, may read ../shared); skips a data set that is absent.

python bench/text_eval.py                 # everything, prints tables, writes JSON
python bench/text_eval.py --skip-pypi     # SciFact only

Measures:
- SciFact nDCG@10 (BEIR definition, 809 claims): BM25 (keeldb.text), dense exact over the
  shipped MiniLM vectors, hybrid RRF over a grid of rrf_k x depth, weighted fusion over a
  grid of weights; every fusion setting also on two halves of the claims (even / odd
  positions) so a default that only suits one subset shows up.
- BM25 single-query throughput (query analysis included) on SciFact and on the 100k pypi
  summaries (its 1,000 query texts), with a sealed unit and with the same rows in a
  memtable unit.
- Indexing rates: analysis (tokenise + stop words + stem) and postings build, docs/s,
  sealed build and memtable appends of 1,000 rows.
Results: ``bench/results/text_eval.json``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from keeldb.engine.hybrid import DEFAULT_DENSE_DEPTH  # noqa: E402
from keeldb.text import (  # noqa: E402
    DEFAULT_DEPTH,
    DEFAULT_RRF_K,
    Analyzer,
    BM25Params,
    MemPostings,
    SealedPostings,
    bm25_search,
    rrf,
    weighted,
)

SHARED = Path(os.environ.get("KEELDB_SHARED", REPO.parent / "shared")) / "datasets"
RESULTS = REPO / "bench" / "results"
MEMTABLE_ROWS = 16_384


# --- data ----------------------------------------------------------------------------------


def load_scifact(root: Path) -> dict[str, Any]:
    corpus = [json.loads(line) for line in gzip.open(root / "corpus.jsonl.gz")]
    queries = [json.loads(line) for line in open(root / "queries.jsonl")]
    qrels: dict[str, set[str]] = {}
    for line in (root / "qrels.tsv").read_text().splitlines()[1:]:
        q, c, s = line.split("\t")
        if int(s) > 0:
            qrels.setdefault(q, set()).add(c)
    return {
        "ids": [d["id"] for d in corpus],
        "texts": [d["title"] + " " + d["text"] for d in corpus],
        "queries": [q["text"] for q in queries],
        "rel": [qrels.get(q["id"], set()) for q in queries],
        "doc_vecs": np.load(root / "corpus.minilm.f16.npy").astype(np.float32),
        "query_vecs": np.load(root / "queries.minilm.f16.npy").astype(np.float32),
    }


def ndcg10(ranked: Sequence[str], relevant: set[str]) -> float:
    """BEIR nDCG@10: binary gains, IDCG over min(#relevant, 10) relevant documents."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / np.log2(i + 2) for i, d in enumerate(ranked[:10]) if d in relevant)
    idcg = sum(1.0 / np.log2(i + 2) for i in range(min(len(relevant), 10)))
    return float(dcg / idcg)


def mean_ndcg(
    runs: Sequence[Sequence[str]], rel: Sequence[set[str]], subset: Sequence[int]
) -> float:
    return float(np.mean([ndcg10(runs[i], rel[i]) for i in subset]))


# --- SciFact -------------------------------------------------------------------------------


def bm25_lists(
    sp: SealedPostings, analyzer: Analyzer, queries: list[str], ids: list[str], depth: int,
    params: BM25Params | None = None,
) -> list[list[tuple[str, float]]]:  # fmt: skip
    out = []
    for q in queries:
        hits = bm25_search([sp], analyzer(q), depth, params=params)
        out.append(
            [
                (ids[r], float(s))
                for r, s in zip(hits.row.tolist(), hits.score.tolist(), strict=True)
            ]
        )
    return out


def dense_lists(data: dict[str, Any], depth: int) -> list[list[tuple[str, float]]]:
    sims = data["query_vecs"] @ data["doc_vecs"].T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :depth]
    ids = data["ids"]
    return [[(ids[j], float(1.0 - sims[i, j])) for j in row] for i, row in enumerate(top.tolist())]


def split_depth_grid(
    lists_dense: list[list[tuple[str, float]]],
    lists_bm25: list[list[tuple[str, float]]],
    data: dict[str, Any],
) -> list[dict[str, Any]]:
    """RRF (default rrf_k) and equal-weight fusion with the dense and BM25 lists cut to
    different depths: hybrid_search's dense side walks ``max(ef, depth)`` on a graph, so
    its depth has a price BM25's has not (``keeldb.engine.hybrid.DEFAULT_DENSE_DEPTH``)."""
    n = len(lists_dense)
    subsets = {"all": list(range(n)), "even": list(range(0, n, 2)), "odd": list(range(1, n, 2))}
    rows = []
    for dense_depth in (10, 20, 32, 48, 64, 100):
        for text_depth in (50, 64, 100, 200):
            for fusion in ("rrf", "weighted"):
                fused = []
                for d, b in zip(lists_dense, lists_bm25, strict=True):
                    lists = [d[:dense_depth], b[:text_depth]]
                    if fusion == "rrf":
                        top = rrf(lists, rrf_k=DEFAULT_RRF_K, depth=200, k=10)
                    else:
                        top = weighted(lists, higher_is_better=[False, True], depth=200, k=10)
                    fused.append([key for key, _ in top])
                row = {"fusion": fusion, "dense_depth": dense_depth, "text_depth": text_depth}
                row.update({h: mean_ndcg(fused, data["rel"], s) for h, s in subsets.items()})
                rows.append(row)
    return rows


def scifact(out: dict[str, Any]) -> None:
    root = SHARED / "scifact"
    if not root.exists():
        print(f"skip SciFact: {root} not found")
        return
    data = load_scifact(root)
    analyzer = Analyzer()
    n = len(data["queries"])
    all_q = list(range(n))
    halves = {"even": all_q[0::2], "odd": all_q[1::2]}

    t0 = time.perf_counter()
    tokens = analyzer.tokenize_many(data["texts"])
    t1 = time.perf_counter()
    sp = SealedPostings.build(tokens)
    t2 = time.perf_counter()
    out["scifact_index"] = {
        "docs": len(tokens), "analyse_docs_per_s": len(tokens) / (t1 - t0),
        "build_docs_per_s": len(tokens) / (t2 - t1), "terms": len(sp.terms),
        "postings": int(len(sp.arrays.post_rows)),
    }  # fmt: skip

    lists_bm25 = bm25_lists(sp, analyzer, data["queries"], data["ids"], 200)
    lists_dense = dense_lists(data, 200)
    runs_bm25 = [[k for k, _ in lst] for lst in lists_bm25]
    runs_dense = [[k for k, _ in lst] for lst in lists_dense]
    quality: dict[str, Any] = {
        "bm25": mean_ndcg(runs_bm25, data["rel"], all_q),
        "dense": mean_ndcg(runs_dense, data["rel"], all_q),
    }
    for name, sub in halves.items():
        quality[f"bm25_{name}"] = mean_ndcg(runs_bm25, data["rel"], sub)
        quality[f"dense_{name}"] = mean_ndcg(runs_dense, data["rel"], sub)
    # BM25 parameter sensitivity (documented, not used to pick the defaults).
    for k1, b in [(0.9, 0.4), (1.2, 0.75), (1.5, 0.75), (2.0, 0.75), (1.2, 0.5), (1.2, 0.9)]:
        lst = bm25_lists(sp, analyzer, data["queries"], data["ids"], 10, BM25Params(k1, b))
        quality[f"bm25_k1={k1}_b={b}"] = mean_ndcg(
            [[k for k, _ in x] for x in lst], data["rel"], all_q
        )
    out["scifact_quality"] = quality

    grid: list[dict[str, Any]] = []
    for depth in (10, 20, 50, 100, 200):
        for rrf_k in (1, 2, 5, 10, 20, 30, 60, 100):
            fused = [
                [k for k, _ in rrf([d[:depth], b[:depth]], rrf_k=rrf_k, depth=depth, k=10)]
                for d, b in zip(lists_dense, lists_bm25, strict=True)
            ]
            row = {"fusion": "rrf", "depth": depth, "rrf_k": rrf_k,
                   "all": mean_ndcg(fused, data["rel"], all_q)}  # fmt: skip
            row.update({h: mean_ndcg(fused, data["rel"], s) for h, s in halves.items()})
            grid.append(row)
        for w in (0.3, 0.4, 0.5, 0.6, 0.7):
            fused = [
                [
                    k
                    for k, _ in weighted(
                        [d[:depth], b[:depth]],
                        higher_is_better=[False, True],
                        weights=[w, 1 - w],
                        depth=depth,
                        k=10,
                    )
                ]  # fmt: skip
                for d, b in zip(lists_dense, lists_bm25, strict=True)
            ]
            row = {"fusion": "weighted", "depth": depth, "dense_weight": w,
                   "all": mean_ndcg(fused, data["rel"], all_q)}  # fmt: skip
            row.update({h: mean_ndcg(fused, data["rel"], s) for h, s in halves.items()})
            grid.append(row)
    out["scifact_fusion_grid"] = grid
    out["scifact_split_depth_grid"] = split = split_depth_grid(lists_dense, lists_bm25, data)
    out["scifact_hybrid_default"] = next(
        g for g in split
        if g["dense_depth"] == DEFAULT_DENSE_DEPTH and g["text_depth"] == DEFAULT_DEPTH
    )  # fmt: skip

    out["scifact_qps"] = {
        "sealed": qps(lambda q: bm25_search([sp], analyzer(q), 10), data["queries"]),
    }
    mem = MemPostings()
    for s in range(0, len(tokens), 1000):
        mem.append(tokens[s : s + 1000])
    out["scifact_qps"]["memtable"] = qps(
        lambda q: bm25_search([mem], analyzer(q), 10), data["queries"]
    )
    out["scifact_bm25s"] = bm25s_baseline(data["texts"], data["queries"], data["ids"], data["rel"])


def qps(fn: Callable[[str], Any], queries: Sequence[str], min_s: float = 2.0) -> float:
    """Single-query throughput: queries one at a time, repeated until ``min_s`` passed."""
    for q in queries[:20]:  # warm caches (stemmer, vocabulary dict)
        fn(q)
    done, t0 = 0, time.perf_counter()
    while True:
        for q in queries:
            fn(q)
        done += len(queries)
        el = time.perf_counter() - t0
        if el >= min_s:
            return done / el


# --- bm25s baseline (same data, same run) ---------------------------------------------------


def bm25s_baseline(
    texts: list[str], queries: list[str], ids: list[str] | None = None,
    rel: list[set[str]] | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """bm25s (English stop words, Snowball stemmer via PyStemmer): build rate, single-query
    QPS including query tokenisation, and nDCG@10 when judgements are given. None when
    bm25s is not installed (pip install bm25s; in keeldb[dev])."""
    try:
        import bm25s
        import Stemmer
    except ImportError:
        print("bm25s not installed: no baseline")
        return None
    stemmer = Stemmer.Stemmer("english")
    t0 = time.perf_counter()
    corpus_tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever = bm25s.BM25()
    retriever.index(corpus_tokens, show_progress=False)
    t1 = time.perf_counter()

    def one(q: str) -> Any:
        qt = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(qt, k=10, show_progress=False, n_threads=1)

    out: dict[str, Any] = {"build_docs_per_s": len(texts) / (t1 - t0), "qps": qps(one, queries)}
    if ids is not None and rel is not None:
        runs = []
        for q in queries:
            docs, _scores = one(q)
            runs.append([ids[int(j)] for j in docs[0]])
        out["ndcg10"] = mean_ndcg(runs, rel, list(range(len(queries))))
    return out


# --- pypi ----------------------------------------------------------------------------------


def pypi(out: dict[str, Any]) -> None:
    root = SHARED / "pypi-minilm"
    if not root.exists():
        print(f"skip pypi: {root} not found")
        return
    texts = [json.loads(line)["text"] for line in gzip.open(root / "meta.jsonl.gz")]
    queries = [json.loads(line)["text"] for line in gzip.open(root / "queries.jsonl.gz")]
    analyzer = Analyzer()
    t0 = time.perf_counter()
    tokens = analyzer.tokenize_many(texts)
    t1 = time.perf_counter()
    sp = SealedPostings.build(tokens)
    t2 = time.perf_counter()
    mem = MemPostings()
    for s in range(0, len(tokens), 1000):
        mem.append(tokens[s : s + 1000])
    t3 = time.perf_counter()
    # A second pass of analysis with a warm stem cache (the steady state of a process).
    t4 = time.perf_counter()
    analyzer.tokenize_many(texts)
    t5 = time.perf_counter()
    n = len(texts)
    out["pypi_index"] = {
        "docs": n, "analyse_docs_per_s_cold": n / (t1 - t0),
        "analyse_docs_per_s_warm": n / (t5 - t4),
        "sealed_build_docs_per_s": n / (t2 - t1), "memtable_append_docs_per_s": n / (t3 - t2),
        "terms": len(sp.terms), "postings": int(len(sp.arrays.post_rows)),
    }  # fmt: skip
    merged_t = time.perf_counter()
    half = n // 2
    a = SealedPostings.build(tokens[:half])
    b = SealedPostings.build(tokens[half:])
    t6 = time.perf_counter()
    SealedPostings.merge([(a, np.arange(half)), (b, np.arange(half, n))], n)
    t7 = time.perf_counter()
    out["pypi_index"]["merge_two_halves_docs_per_s"] = n / (t7 - t6)
    del merged_t
    out["pypi_bm25s"] = bm25s_baseline(texts, queries)
    # The engine's shape: sealed segments plus a memtable of up to 16,384 rows
    # (memtable_rows, docs/params.md), filled by appends of 1,000 rows.
    cut = n - MEMTABLE_ROWS
    rest = SealedPostings.build(tokens[:cut])
    recent = MemPostings()
    for s in range(cut, n, 1000):
        recent.append(tokens[s : min(s + 1000, n)])
    quarters = [SealedPostings.build(tokens[i::4]) for i in range(4)]
    out["pypi_qps"] = {
        "sealed": qps(lambda q: bm25_search([sp], analyzer(q), 10), queries),
        "sealed_plus_16k_memtable": qps(
            lambda q: bm25_search([rest, recent], analyzer(q), 10), queries
        ),
        "memtable_100k": qps(lambda q: bm25_search([mem], analyzer(q), 10), queries),
        "sealed_x4_units": qps(lambda q: bm25_search(quarters, analyzer(q), 10), queries),
    }


# --- report --------------------------------------------------------------------------------


def report(out: dict[str, Any]) -> None:
    if "scifact_quality" in out:
        q = out["scifact_quality"]
        print("\nSciFact nDCG@10 (809 claims; even / odd halves)")
        print(f"  BM25   {q['bm25']:.4f}  ({q['bm25_even']:.4f} / {q['bm25_odd']:.4f})")
        print(f"  dense  {q['dense']:.4f}  ({q['dense_even']:.4f} / {q['dense_odd']:.4f})")
        d = out["scifact_hybrid_default"]
        print(f"  hybrid RRF default (rrf_k={DEFAULT_RRF_K}, dense depth={d['dense_depth']}, "
              f"BM25 depth={d['text_depth']}) {d['all']:.4f}  "
              f"({d['even']:.4f} / {d['odd']:.4f})")  # fmt: skip
        print("  BM25 k1/b: " + ", ".join(f"{k[5:]}={v:.4f}" for k, v in q.items() if "k1=" in k))
        print("\n  RRF grid (all | even | odd):")
        for g in out["scifact_fusion_grid"]:
            if g["fusion"] == "rrf":
                print(f"    depth={g['depth']:<4} rrf_k={g['rrf_k']:<4} "
                      f"{g['all']:.4f} | {g['even']:.4f} | {g['odd']:.4f}")  # fmt: skip
        print("  weighted grid (dense weight):")
        for g in out["scifact_fusion_grid"]:
            if g["fusion"] == "weighted":
                print(f"    depth={g['depth']:<4} w={g['dense_weight']:<4} "
                      f"{g['all']:.4f} | {g['even']:.4f} | {g['odd']:.4f}")  # fmt: skip
        print(f"  dense depth x BM25 depth (rrf_k={DEFAULT_RRF_K}; weighted: equal weights):")
        for g in out["scifact_split_depth_grid"]:
            print(f"    {g['fusion']:<8} dense={g['dense_depth']:<4} bm25={g['text_depth']:<4} "
                  f"{g['all']:.4f} | {g['even']:.4f} | {g['odd']:.4f}")  # fmt: skip
        best = max(out["scifact_fusion_grid"], key=lambda g: g["all"])
        print(f"  best of grid: {best}")
        print(f"\nSciFact index: {out['scifact_index']}")
        print(f"SciFact BM25 single-query QPS: {out['scifact_qps']}")
        print(f"SciFact bm25s baseline (same run): {out.get('scifact_bm25s')}")
        _ratios("SciFact", out["scifact_qps"], out["scifact_index"], out.get("scifact_bm25s"))
    if "pypi_index" in out:
        print(f"\npypi 100k index: {out['pypi_index']}")
        print(f"pypi 100k BM25 single-query QPS: {out['pypi_qps']}")
        print(f"pypi 100k bm25s baseline (same run): {out.get('pypi_bm25s')}")
        build = {"build_docs_per_s": 1 / (1 / out["pypi_index"]["analyse_docs_per_s_cold"]
                 + 1 / out["pypi_index"]["sealed_build_docs_per_s"])}  # fmt: skip
        _ratios("pypi 100k", out["pypi_qps"], build, out.get("pypi_bm25s"))


def _ratios(
    label: str, ours: dict[str, float], index: dict[str, Any], base: dict[str, Any] | None
) -> None:
    if not base:
        return
    if "build_docs_per_s" not in index:
        index = {
            "build_docs_per_s": 1
            / (1 / index["analyse_docs_per_s"] + 1 / index["build_docs_per_s"])
        }
    print(
        f"  {label} ratios vs bm25s: single-query QPS {ours['sealed'] / base['qps']:.2f}x "
        + "".join(f"({k} {v / base['qps']:.2f}x) " for k, v in ours.items() if k != "sealed")
        + "; "
        f"analyse+build {index['build_docs_per_s'] / base['build_docs_per_s']:.2f}x"
    )


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--skip-pypi", action="store_true")
    ap.add_argument("--skip-scifact", action="store_true")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {}
    if not args.skip_scifact:
        scifact(out)
    if not args.skip_pypi:
        pypi(out)
    report(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text_eval.json").write_text(json.dumps(out, indent=1))
    print(f"\nwrote {RESULTS / 'text_eval.json'}")


if __name__ == "__main__":
    main()
