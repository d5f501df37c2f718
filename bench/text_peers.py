"""Text search side by side: KeelDB, LanceDB, Milvus Lite and Chroma on BEIR SciFact.

Every system gets the same 5,183 abstracts (title + text) with the shipped MiniLM vectors
and answers the same 809 claims (their shipped vectors for the dense side). Per system:

- ``text``: its BM25 full-text search (KeelDB ``text_search``; LanceDB native FTS index,
  English stemming and stop words; Milvus Lite BM25 function into a sparse vector,
  standard tokenizer + lowercase + English stemmer and stop words). Chroma has no local
  BM25 (cloud only): n/a.
- ``hybrid``: dense + BM25 fused (KeelDB ``hybrid_search`` defaults; LanceDB
  ``query_type="hybrid"`` with its default RRF reranker; Milvus ``hybrid_search`` with
  ``RRFRanker()``, k=60). Chroma: n/a.
- ``dense``: plain vector search (for reference; every system).
- nDCG@10 (BEIR definition) over all 809 claims; single-query QPS (wall clock, queries
  cycled for at least ``--min-s`` seconds, same order for every system, one system at a
  time; the load average is printed with each system since the machine is shared).
- ``fresh``: insert one new document holding a unique made-up word, then query for that
  word at once (no flush/optimize/index call in between): found or not. Chroma answers
  this with ``where_document={"$contains": word}`` (its local document filter).
- ``deleted``: delete that document, query at once: gone or not.

A peer that cannot be installed or run records its error instead of figures. The peers
come from the ``bench`` extra (``pip install -e '.[bench]'``).

Usage: ``python -m bench text-peers`` (``--systems keeldb,lancedb,milvus,chroma``,
``--min-s``). Results: ``bench/results/text_peers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from text_eval import RESULTS, SHARED, load_scifact, mean_ndcg  # noqa: E402

os.environ.setdefault("LANCE_LOG", "error")  # LanceDB's per-query deprecation warnings
os.environ.setdefault("RUST_LOG", "error")

FRESH_WORD = "qwzxkjvplorbnt"
FRESH_ID = "fresh-doc"
Data = dict[str, Any]
Search = Callable[[int], list[str]]


class Peer:
    """One system: ``load`` the corpus, then ranked id lists per query index."""

    name = ""

    def load(self, data: Data, path: str) -> None:
        raise NotImplementedError

    def text(self, data: Data) -> Search | None:
        return None

    def hybrid(self, data: Data) -> Search | None:
        return None

    def dense(self, data: Data) -> Search:
        raise NotImplementedError

    def fresh(self, data: Data) -> tuple[bool, bool]:
        """(found right after insert, gone right after delete)."""
        raise NotImplementedError

    def version(self) -> str:
        return ""

    def close(self) -> None:
        pass


def _fresh_doc() -> str:
    return f"A note on {FRESH_WORD} in a newly written abstract about cell biology."


class KeelPeer(Peer):
    name = "KeelDB"

    def load(self, data: Data, path: str) -> None:
        import keeldb

        self.db = keeldb.open(path)
        self.col = self.db.create_collection("scifact", dim=data["doc_vecs"].shape[1])
        ids, vecs, texts = data["ids"], data["doc_vecs"], data["texts"]
        for s in range(0, len(ids), 1000):
            self.col.upsert(ids[s : s + 1000], vecs[s : s + 1000], documents=texts[s : s + 1000])

    def text(self, data: Data) -> Search:
        qs = data["queries"]
        return lambda i: [h.id for h in self.col.text_search(qs[i], 10)]

    def hybrid(self, data: Data) -> Search:
        qs, qv = data["queries"], data["query_vecs"]
        return lambda i: [h.id for h in self.col.hybrid_search(qs[i], 10, vector=qv[i])]

    def dense(self, data: Data) -> Search:
        qv = data["query_vecs"]
        return lambda i: [h.id for h in self.col.search(qv[i], 10)]

    def fresh(self, data: Data) -> tuple[bool, bool]:
        vec = data["doc_vecs"][:1]
        self.col.upsert([FRESH_ID], vec, documents=[_fresh_doc()])
        found = FRESH_ID in [h.id for h in self.col.text_search(FRESH_WORD, 10)]
        self.col.delete([FRESH_ID])
        gone = FRESH_ID not in [h.id for h in self.col.text_search(FRESH_WORD, 10)]
        return found, gone

    def version(self) -> str:
        import keeldb

        return f"keeldb {keeldb.__version__}"

    def close(self) -> None:
        self.db.close()


class LancePeer(Peer):
    name = "LanceDB"

    def load(self, data: Data, path: str) -> None:
        import lancedb
        import pyarrow as pa

        self.db = lancedb.connect(path)
        vecs = data["doc_vecs"]
        self.schema = pa.schema(
            [
                pa.field("id", pa.string()),
                pa.field("text", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), vecs.shape[1])),
            ]
        )
        self.tbl = self.db.create_table("scifact", schema=self.schema)
        ids, texts = data["ids"], data["texts"]
        for s in range(0, len(ids), 1000):
            self.tbl.add(self._table(ids[s : s + 1000], texts[s : s + 1000], vecs[s : s + 1000]))
        self.tbl.create_fts_index(
            "text", use_tantivy=False, language="English", stem=True, remove_stop_words=True
        )

    def _table(self, ids: list[str], texts: list[str], vecs: np.ndarray) -> Any:
        import pyarrow as pa

        flat = pa.array(np.ascontiguousarray(vecs, dtype=np.float32).ravel())
        vec = pa.FixedSizeListArray.from_arrays(flat, vecs.shape[1])
        return pa.Table.from_arrays([pa.array(ids), pa.array(texts), vec], schema=self.schema)

    def text(self, data: Data) -> Search:
        qs = data["queries"]

        def run(i: int) -> list[str]:
            q = self.tbl.search(qs[i], query_type="fts").limit(10).select(["id"])
            return q.to_arrow()["id"].to_pylist()

        return run

    def hybrid(self, data: Data) -> Search:
        qs, qv = data["queries"], data["query_vecs"]

        def run(i: int) -> list[str]:
            q = (
                self.tbl.search(query_type="hybrid")
                .vector(qv[i])
                .text(qs[i])
                .distance_type("cosine")
                .limit(10)
                .select(["id"])
            )
            return q.to_arrow()["id"].to_pylist()

        return run

    def dense(self, data: Data) -> Search:
        qv = data["query_vecs"]

        def run(i: int) -> list[str]:
            q = self.tbl.search(qv[i]).distance_type("cosine").limit(10).select(["id"])
            return q.to_arrow()["id"].to_pylist()

        return run

    def fresh(self, data: Data) -> tuple[bool, bool]:
        self.tbl.add(self._table([FRESH_ID], [_fresh_doc()], data["doc_vecs"][:1]))

        def ids() -> list[str]:
            q = self.tbl.search(FRESH_WORD, query_type="fts").limit(10).select(["id"])
            return q.to_arrow()["id"].to_pylist()

        found = FRESH_ID in ids()
        self.tbl.delete(f"id = '{FRESH_ID}'")
        return found, FRESH_ID not in ids()

    def version(self) -> str:
        import lancedb

        return f"lancedb {lancedb.__version__}"


# Milvus Lite 3.2 has no "english" analyzer type (only "standard" and "jieba"): the
# standard tokenizer with lowercase, English stemming and English stop words instead.
MILVUS_ANALYZER = {
    "tokenizer": "standard",
    "filter": [
        "lowercase",
        {"type": "stemmer", "language": "english"},
        {"type": "stop", "stop_words": ["_english_"]},
    ],
}


class MilvusPeer(Peer):
    name = "Milvus Lite"

    def load(self, data: Data, path: str) -> None:
        from pymilvus import DataType, Function, FunctionType, MilvusClient

        self.client = MilvusClient(os.path.join(path, "milvus.db"))
        dim = data["doc_vecs"].shape[1]
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field(
            "text",
            DataType.VARCHAR,
            max_length=65535,
            enable_analyzer=True,
            analyzer_params=MILVUS_ANALYZER,
        )
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25",
                function_type=FunctionType.BM25,
                input_field_names=["text"],
                output_field_names=["sparse"],
            )
        )
        index = self.client.prepare_index_params()
        index.add_index(
            "dense",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": 16, "efConstruction": 200},
        )
        index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        self.client.create_collection("scifact", schema=schema, index_params=index)
        ids, vecs, texts = data["ids"], data["doc_vecs"], data["texts"]
        for s in range(0, len(ids), 1000):
            rows = [
                {"id": i, "text": t, "dense": v.tolist()}
                for i, t, v in zip(
                    ids[s : s + 1000], texts[s : s + 1000], vecs[s : s + 1000], strict=True
                )
            ]
            self.client.insert("scifact", rows)
        self.client.flush("scifact")
        self.client.load_collection("scifact")

    def _sparse(self, q: str, k: int = 10) -> list[str]:
        res = self.client.search(
            "scifact",
            data=[q],
            anns_field="sparse",
            limit=k,
            search_params={"metric_type": "BM25"},
            output_fields=["id"],
        )
        return [h["id"] for h in res[0]]

    def text(self, data: Data) -> Search:
        qs = data["queries"]
        return lambda i: self._sparse(qs[i])

    def hybrid(self, data: Data) -> Search:
        from pymilvus import AnnSearchRequest, RRFRanker

        qs, qv = data["queries"], data["query_vecs"]

        def run(i: int) -> list[str]:
            reqs = [
                AnnSearchRequest([qv[i].tolist()], "dense", {"metric_type": "COSINE"}, 100),
                AnnSearchRequest([qs[i]], "sparse", {"metric_type": "BM25"}, 100),
            ]
            res = self.client.hybrid_search(
                "scifact", reqs, RRFRanker(), limit=10, output_fields=["id"]
            )
            return [h["id"] for h in res[0]]

        return run

    def dense(self, data: Data) -> Search:
        qv = data["query_vecs"]

        def run(i: int) -> list[str]:
            res = self.client.search(
                "scifact", data=[qv[i].tolist()], anns_field="dense", limit=10, output_fields=["id"]
            )
            return [h["id"] for h in res[0]]

        return run

    def fresh(self, data: Data) -> tuple[bool, bool]:
        row = {"id": FRESH_ID, "text": _fresh_doc(), "dense": data["doc_vecs"][0].tolist()}
        self.client.insert("scifact", [row])
        found = FRESH_ID in self._sparse(FRESH_WORD)
        self.client.delete("scifact", ids=[FRESH_ID])
        return found, FRESH_ID not in self._sparse(FRESH_WORD)

    def version(self) -> str:
        from importlib.metadata import version

        return f"pymilvus {version('pymilvus')}, milvus-lite {version('milvus-lite')}"

    def close(self) -> None:
        self.client.close()


class ChromaPeer(Peer):
    name = "Chroma"

    def load(self, data: Data, path: str) -> None:
        import chromadb

        self.client = chromadb.PersistentClient(path=path)
        self.col = self.client.create_collection(
            "scifact", metadata={"hnsw:space": "cosine"}, embedding_function=None
        )
        ids, vecs, texts = data["ids"], data["doc_vecs"], data["texts"]
        for s in range(0, len(ids), 1000):
            self.col.add(
                ids=ids[s : s + 1000], embeddings=vecs[s : s + 1000], documents=texts[s : s + 1000]
            )

    def dense(self, data: Data) -> Search:
        qv = data["query_vecs"]

        def run(i: int) -> list[str]:
            res = self.col.query(query_embeddings=qv[i : i + 1], n_results=10, include=[])
            return list(res["ids"][0])

        return run

    def fresh(self, data: Data) -> tuple[bool, bool]:
        vec = data["doc_vecs"][:1]
        self.col.add(ids=[FRESH_ID], embeddings=vec, documents=[_fresh_doc()])

        def ids() -> list[str]:
            res = self.col.get(where_document={"$contains": FRESH_WORD}, include=[])
            return list(res["ids"])

        found = FRESH_ID in ids()
        self.col.delete(ids=[FRESH_ID])
        return found, FRESH_ID not in ids()

    def version(self) -> str:
        import chromadb

        return f"chromadb {chromadb.__version__}"


PEERS: dict[str, type[Peer]] = {
    "keeldb": KeelPeer,
    "lancedb": LancePeer,
    "milvus": MilvusPeer,
    "chroma": ChromaPeer,
}


def _qps(fn: Search, n: int, min_s: float) -> float:
    done, t = 0, time.perf_counter()
    while True:
        for i in range(n):
            fn(i)
            done += 1
            el = time.perf_counter() - t
            if el >= min_s and done >= 50:
                return done / el


def run_peer(key: str, data: Data, min_s: float) -> dict[str, Any]:
    """Figures for one system (or its error)."""
    peer = PEERS[key]()
    out: dict[str, Any] = {"system": peer.name, "load_before": os.getloadavg()[0]}
    path = tempfile.mkdtemp(prefix=f"text-peers-{key}-")
    every = list(range(len(data["queries"])))
    try:
        out["version"] = peer.version()
        t = time.perf_counter()
        peer.load(data, path)
        out["load_s"] = time.perf_counter() - t
        for mode in ("text", "hybrid", "dense"):
            fn = getattr(peer, mode)(data)
            if fn is None:
                continue
            runs = [fn(i) for i in every]
            out[f"{mode}_ndcg10"] = mean_ndcg(runs, data["rel"], every)
            out[f"{mode}_qps"] = _qps(fn, len(every), min_s)
        out["fresh_found"], out["deleted_gone"] = peer.fresh(data)
        peer.close()
    except Exception as exc:  # recorded: a peer that cannot run is a result too
        out["error"] = f"{type(exc).__name__}: {exc}"
        out["traceback"] = traceback.format_exc(limit=4)
    finally:
        shutil.rmtree(path, ignore_errors=True)
    out["load_after"] = os.getloadavg()[0]
    return out


def _cell(r: dict[str, Any], key: str, fmt: str) -> str:
    v = r.get(key)
    return "n/a" if v is None else format(v, fmt)


def table(results: Sequence[dict[str, Any]]) -> str:
    """The markdown table of ``results``."""
    lines = [
        "| system | BM25 nDCG@10 | BM25 q/s | hybrid nDCG@10 | hybrid q/s | dense nDCG@10 "
        "| dense q/s | found right after insert | gone right after delete | load avg |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['system']} | error: {r['error']} |||||||||")
            continue
        lines.append(
            f"| {r['system']} ({r['version']}) | {_cell(r, 'text_ndcg10', '.4f')} | "
            f"{_cell(r, 'text_qps', ',.0f')} | {_cell(r, 'hybrid_ndcg10', '.4f')} | "
            f"{_cell(r, 'hybrid_qps', ',.0f')} | {_cell(r, 'dense_ndcg10', '.4f')} | "
            f"{_cell(r, 'dense_qps', ',.0f')} | {r.get('fresh_found')} | "
            f"{r.get('deleted_gone')} | {r['load_before']:.1f} → {r['load_after']:.1f} |"
        )
    return "\n".join(lines)


def merge_results(
    previous: list[dict[str, Any]], fresh: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``previous`` results with each system measured again replaced by its ``fresh``
    result (in place, so the table keeps its order); systems new to the file last. A run
    of some systems (``--systems``) so keeps the others' last results."""
    by_system = {r.get("system"): r for r in fresh}
    merged = [by_system.pop(r.get("system"), r) for r in previous]
    return merged + [r for r in fresh if r.get("system") in by_system]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--systems", default=",".join(PEERS))
    ap.add_argument("--min-s", type=float, default=3.0)
    args = ap.parse_args(argv)
    data = load_scifact(SHARED / "scifact")
    results = []
    for key in args.systems.split(","):
        print(f"== {key}", flush=True)
        r = run_peer(key, data, args.min_s)
        print({k: v for k, v in r.items() if k != "traceback"}, flush=True)
        if "traceback" in r:
            print(r["traceback"], flush=True)
        results.append(r)
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "text_peers.json"
    previous = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(merge_results(previous, results), indent=2))


if __name__ == "__main__":
    main()
