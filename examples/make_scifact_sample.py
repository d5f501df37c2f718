"""Make the SciFact sample that ``examples/rag.py`` ships with (run once; output committed).

``python examples/make_scifact_sample.py [SCIFACT_DIR]`` reads the BEIR SciFact files
(default ``../shared/datasets/scifact``: corpus, claims, relevance judgements and their
all-MiniLM-L6-v2 embeddings; see that directory's README) and writes
``examples/data/scifact_sample.jsonl.gz`` and ``examples/data/scifact_sample.npz``:

- 60 claims (seeded choice among those with judged documents) and every document judged
  relevant to them, plus other abstracts chosen at random up to 400 documents;
- for each document: ``id``, ``title``, ``text`` and a ``field`` label (see
  :func:`field_of`), and its shipped float16 embedding of ``title + " " + text``;
- for each claim: ``id``, ``text``, the ids of its relevant documents, and its embedding.

Licences: claims CC BY 4.0, abstracts ODC-By 1.0 (allenai/scifact).
"""

from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
N_CLAIMS = 60
N_DOCS = 400
SEED = 15

# A document's ``field`` for the example's metadata filter: the first group whose
# stems appear in its title (a coarse keyword label made here, not part of SciFact).
FIELDS = [
    ("oncology", ("cancer", "tumor", "tumour", "carcinoma", "leukemia", "lymphoma", "oncog")),
    ("immunology", ("immun", "antibod", "t cell", "t-cell", "lymphocyte", "inflamm")),
    ("neuroscience", ("brain", "neur", "cortex", "cognitive", "alzheimer", "dementia")),
    ("cardiology", ("heart", "cardi", "coronary", "vascular", "blood pressure")),
    ("infection", ("virus", "viral", "hiv", "bacteri", "infect", "malaria", "tubercul")),
    ("genetics", ("gene", "genom", "dna", "rna", "chromosom", "mutation")),
]


def field_of(title: str) -> str:
    """The first field whose keyword occurs in ``title`` (lower-cased), else "other"."""
    low = title.lower()
    for name, words in FIELDS:
        if any(w in low for w in words):
            return name
    return "other"


def main(src: str) -> None:
    with gzip.open(os.path.join(src, "corpus.jsonl.gz"), "rt") as f:
        corpus = [json.loads(line) for line in f]
    with open(os.path.join(src, "queries.jsonl")) as f:
        queries = [json.loads(line) for line in f]
    doc_vecs = np.load(os.path.join(src, "corpus.minilm.f16.npy"))
    query_vecs = np.load(os.path.join(src, "queries.minilm.f16.npy"))
    relevant: dict[str, list[str]] = {}
    with open(os.path.join(src, "qrels.tsv")) as f:
        next(f)
        for line in f:
            qid, did, score = line.split("\t")
            if int(score) > 0:
                relevant.setdefault(qid, []).append(did)
    rng = np.random.default_rng(SEED)
    judged = [i for i, q in enumerate(queries) if q["id"] in relevant]
    claims = sorted(rng.choice(judged, size=N_CLAIMS, replace=False).tolist())
    doc_index = {d["id"]: i for i, d in enumerate(corpus)}
    wanted = {doc_index[d] for i in claims for d in relevant[queries[i]["id"]]}
    others = [i for i in rng.permutation(len(corpus)).tolist() if i not in wanted]
    docs = sorted(wanted) + sorted(others[: N_DOCS - len(wanted)])
    os.makedirs(OUT, exist_ok=True)
    with gzip.open(os.path.join(OUT, "scifact_sample.jsonl.gz"), "wt") as f:
        for i in docs:
            d = corpus[i]
            row = {"kind": "doc", "id": d["id"], "title": d["title"], "text": d["text"]}
            row["field"] = field_of(d["title"])
            f.write(json.dumps(row) + "\n")
        for i in claims:
            q = queries[i]
            row = {"kind": "claim", "id": q["id"], "text": q["text"]}
            row["relevant"] = relevant[q["id"]]
            f.write(json.dumps(row) + "\n")
    np.savez_compressed(
        os.path.join(OUT, "scifact_sample.npz"),
        docs=doc_vecs[docs].astype(np.float16),
        claims=query_vecs[claims].astype(np.float16),
    )
    print(f"wrote {len(docs)} documents and {len(claims)} claims to {OUT}")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(HERE, "..", "..", "shared", "datasets", "scifact")
    )
