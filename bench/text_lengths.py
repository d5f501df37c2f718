"""Text search across document lengths: a generated family of collections.

The shared sets have one length each (pypi: one-line summaries; SciFact: 5,183
abstracts), so a figure that holds on them may not hold on a user's documents. Each
member of this family draws its documents from SciFact's sentences (a fixed seed), a
different number of sentences per document, and pairs them with the pypi set's vectors
(the dense side's cost depends on the vectors, not the text). Queries are SciFact's
claims with pypi query vectors.

For each member, on the compacted collection: the mean analysed terms per document and
postings read per query, ``text_search`` (k = 10) and plain vector ``search`` (k = 10,
HNSW) single-query rates, and ``hybrid_search`` (k = 10) against ``search`` (target
>= 0.5x), interleaved ``--repeats`` times, medians.

Usage: ``python -m bench text-lengths [--rows N] [--repeats N] [--members short,...]``.
Results: ``bench/results/text_lengths.json``. Needs ``../shared`` (SciFact and pypi).
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keeldb  # noqa: E402
from keeldb.engine.text_search import _postings, text_index_of  # noqa: E402
from text_engine import _qps  # noqa: E402
from text_eval import RESULTS, SHARED  # noqa: E402

# Sentences per document (inclusive range), by member name.
MEMBERS: dict[str, tuple[int, int]] = {
    "sentence": (1, 1),
    "paragraph": (3, 5),
    "abstract": (8, 12),
    "long": (20, 40),
}
SEED = 7


def sentences(abstracts: Sequence[str]) -> list[str]:
    """The sentences (over 20 characters) of ``abstracts``: split after . ! or ? and
    before a capital letter (SciFact's abstracts often have no space there)."""
    out: list[str] = []
    for text in abstracts:
        out.extend(s for s in re.split(r"(?<=[.!?])\s*(?=[A-Z])", text) if len(s) > 20)
    return out


def documents(pool: Sequence[str], n: int, per_doc: tuple[int, int], seed: int = SEED) -> list[str]:
    """``n`` documents, each ``per_doc[0]..per_doc[1]`` sentences drawn from ``pool``
    (with replacement), the same for the same arguments."""
    rng = np.random.default_rng(seed)
    lo, hi = per_doc
    sizes = rng.integers(lo, hi + 1, n)
    picks = rng.integers(0, len(pool), int(sizes.sum()))
    out, at = [], 0
    for size in sizes.tolist():
        out.append(" ".join(pool[j] for j in picks[at : at + size].tolist()))
        at += size
    return out


def _postings_per_query(col: Any, claims: Sequence[str]) -> float:
    """Mean postings of a query's distinct terms over the collection's units."""
    analyzer = text_index_of(col).analyzer
    units = [_postings(u) for u in col._state.units() if u.rows]
    total = 0
    for claim in claims:
        terms = list(dict.fromkeys(analyzer(claim)))
        for unit in units:
            _, _, starts, ends = unit.spans(terms)
            total += int((ends - starts).sum())
    return total / len(claims)


def member(name: str, docs: list[str], data: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Build one member's collection and measure it (see the module docstring)."""
    n = len(docs)
    vecs = data["vecs"][:n]
    pairs = list(zip(data["claims"], data["qvecs"], strict=False))
    with tempfile.TemporaryDirectory() as d, keeldb.open(d) as db:
        col = db.create_collection("c", dim=vecs.shape[1])
        t = time.perf_counter()
        for s in range(0, n, 1000):
            col.upsert([f"d{i}" for i in range(s, min(s + 1000, n))], vecs[s : s + 1000],
                       documents=docs[s : s + 1000])  # fmt: skip
        col.flush()
        col.compact()
        build_s = time.perf_counter() - t
        analyzer = text_index_of(col).analyzer
        terms = float(np.mean([len(analyzer(x)) for x in docs[:2000]]))
        postings = _postings_per_query(col, data["claims"])
        text_q, vec_q, hyb_q = [], [], []
        for _ in range(repeats):  # interleaved
            text_q.append(_qps(lambda p: col.text_search(p[0], 10), pairs, f"{name} text"))
            hyb_q.append(
                _qps(lambda p: col.hybrid_search(p[0], 10, vector=p[1]), pairs, f"{name} hybrid")
            )
            vec_q.append(_qps(lambda p: col.search(p[1], 10), pairs, f"{name} search"))
    r = {
        "rows": n,
        "sentences_per_doc": list(MEMBERS[name]),
        "terms_per_doc": terms,
        "postings_per_query": postings,
        "build_s": build_s,
        "text_qps": float(np.median(text_q)),
        "vector_qps": float(np.median(vec_q)),
        "hybrid_qps": float(np.median(hyb_q)),
        "hybrid_over_vector": float(np.median([h / v for h, v in zip(hyb_q, vec_q, strict=True)])),
    }
    print(
        f"{name:9s} {terms:7.1f} terms/doc {postings:9,.0f} postings/query  text_search "
        f"{r['text_qps']:7,.0f} q/s  search {r['vector_qps']:7,.0f} q/s  hybrid "
        f"{r['hybrid_qps']:7,.0f} q/s ({r['hybrid_over_vector']:.2f}x search; target >= 0.5x)",
        flush=True,
    )
    return r


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench text-lengths", description=__doc__)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--members", default=",".join(MEMBERS))
    args = ap.parse_args(argv)
    scifact, pypi = SHARED / "scifact", SHARED / "pypi-minilm"
    if not (scifact.exists() and pypi.exists()):
        print(f"skip: {scifact} or {pypi} not found")
        return 0
    abstracts = [
        (d["title"] + ". " + d["text"])
        for d in map(json.loads, gzip.open(scifact / "corpus.jsonl.gz"))
    ]
    data = {
        "claims": [json.loads(line)["text"] for line in open(scifact / "queries.jsonl")],
        "vecs": np.load(pypi / "base.f16.npy").astype(np.float32)[: args.rows],
        "qvecs": np.load(pypi / "queries.f16.npy").astype(np.float32),
    }
    pool = sentences(abstracts)
    rows = min(args.rows, len(data["vecs"]))
    print(f"{len(pool):,} SciFact sentences; {rows:,} documents per member, seed {SEED}")
    out: dict[str, Any] = {}
    for name in args.members.split(","):
        out[name] = member(name, documents(pool, rows, MEMBERS[name]), data, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "text_lengths.json").write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
