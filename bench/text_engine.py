"""Engine-level text search on SciFact: ingest, text_search / hybrid_search quality and QPS.

Reads ``../shared/datasets/scifact`` (not available in CI). Same-run baselines: the
library-level ``bm25_search`` over one SealedPostings built from the same documents, and
plain vector ``search`` for hybrid. Usage: ``python bench/text_engine.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keeldb  # noqa: E402
from keeldb.text import Analyzer, SealedPostings, bm25_search  # noqa: E402
from text_eval import SHARED, load_scifact, mean_ndcg  # noqa: E402


def main() -> None:
    data = load_scifact(SHARED / "scifact")
    ids, texts, queries = data["ids"], data["texts"], data["queries"]
    vecs, qvecs = data["doc_vecs"], data["query_vecs"]
    n, q = len(ids), len(queries)
    every = list(range(q))
    with tempfile.TemporaryDirectory() as d, keeldb.open(d) as db:  # fsync durability
        col = db.create_collection("scifact", dim=vecs.shape[1])
        t = time.perf_counter()
        for s in range(0, n, 500):
            col.upsert(ids[s : s + 500], vecs[s : s + 500], documents=texts[s : s + 500])
        ingest = n / (time.perf_counter() - t)
        fresh = col.text_search(texts[-1][:200], 1)[0].id == ids[-1]
        col.compact()
        t = time.perf_counter()
        runs = [[h.id for h in col.text_search(x, 10)] for x in queries]
        text_qps = q / (time.perf_counter() - t)
        sp = SealedPostings.build(Analyzer().tokenize_many(texts))
        an = Analyzer()
        t = time.perf_counter()
        for x in queries:
            bm25_search([sp], an(x), 10)
        lib_qps = q / (time.perf_counter() - t)
        t = time.perf_counter()
        pairs = zip(queries, qvecs, strict=True)
        hyb = [[h.id for h in col.hybrid_search(x, 10, vector=v)] for x, v in pairs]
        hyb_qps = q / (time.perf_counter() - t)
        t = time.perf_counter()
        for v in qvecs:
            col.search(v, 10)
        vec_qps = q / (time.perf_counter() - t)
    print(
        f"ingest with documents (fsync, batches of 500): {ingest:,.0f} docs/s; "
        f"fresh document found right after upsert: {fresh}"
    )
    print(
        f"text_search nDCG@10 {mean_ndcg(runs, data['rel'], every):.4f}; "
        f"{text_qps:,.0f} q/s vs bm25_search on one unit {lib_qps:,.0f} q/s "
        f"({text_qps / lib_qps:.2f}x)"
    )
    print(
        f"hybrid_search nDCG@10 {mean_ndcg(hyb, data['rel'], every):.4f}; "
        f"{hyb_qps:,.0f} q/s vs vector search {vec_qps:,.0f} q/s ({hyb_qps / vec_qps:.2f}x)"
    )


if __name__ == "__main__":
    main()
