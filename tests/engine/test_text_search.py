"""Collection.text_search against a brute-force BM25 oracle, through writes, deletes,
filters, seals, merges, reopen, a crash and a damaged postings file."""

from __future__ import annotations

import glob
import math
import os
import random
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError
from keeldb.text import Analyzer

WORDS = [
    "apple", "banana", "cherry", "date", "elder", "fig", "grape", "honey", "iris", "jade",
    "kiwi", "lemon", "mango", "nectar", "olive", "peach", "quince", "rasp", "straw", "tango",
]  # fmt: skip
ANALYZER = Analyzer()


def _doc(rng: random.Random) -> str:
    n = rng.randint(0, 10)
    return " ".join(WORDS[min(int(rng.expovariate(0.2)), len(WORDS) - 1)] for _ in range(n))


def _oracle(
    live: dict[str, tuple[str | None, dict[str, Any]]],
    query: str,
    k: int,
    allowed: Any = None,
) -> dict[str, float]:
    """id -> BM25 score (Lucene IDF, k1 1.2, b 0.75) of the top k (ties: all at the
    boundary included) among live documents passing ``allowed(metadata)``."""
    toks = {i: ANALYZER(d or "") for i, (d, _) in live.items()}
    docs = {i: t for i, t in toks.items() if t}
    n = len(docs)
    avgdl = sum(map(len, docs.values())) / n if n else 1.0
    q = list(dict.fromkeys(ANALYZER(query)))
    scores: dict[str, float] = {}
    for i, d in docs.items():
        if allowed is not None and not allowed(live[i][1]):
            continue
        s = 0.0
        for t in q:
            tf = d.count(t)
            if tf:
                df = sum(1 for dd in docs.values() if t in dd)
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                s += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(d) / avgdl))
        if s > 0:
            scores[i] = s
    ranked = sorted(scores.values(), reverse=True)
    if len(ranked) > k:
        cut = ranked[k - 1]
        return {i: s for i, s in scores.items() if s >= cut - 1e-9}
    return scores


def _check(col: keeldb.Collection, live: dict[str, Any], query: str, k: int, **kw: Any) -> None:
    allowed = kw.pop("allowed", None)
    hits = col.text_search(query, k, **kw)
    want = _oracle(live, query, k, allowed)
    assert len(hits) == min(k, len(want)), (query, hits, want)
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    for h in hits:
        assert h.id in want, (query, h.id)
        assert h.score == pytest.approx(want[h.id], rel=1e-9)
        assert h.distance == -h.score  # type: ignore[operator]
        assert h.document == live[h.id][0]
        assert h.metadata == live[h.id][1]


def _run_workload(
    col: keeldb.Collection, rng: random.Random, rounds: int, start: dict[str, Any] | None = None
) -> dict[str, Any]:
    live: dict[str, tuple[str | None, dict[str, Any]]] = dict(start or {})
    for r in range(rounds):
        ids = [f"d{rng.randrange(400)}" for _ in range(60)]
        ids = list(dict.fromkeys(ids))
        docs = [_doc(rng) if rng.random() > 0.1 else None for _ in ids]
        metas = [{"g": rng.randrange(3)} for _ in ids]
        vecs = np.random.default_rng(r).standard_normal((len(ids), 8)).astype(np.float32)
        col.upsert(ids, vecs, metas, documents=docs)
        for i, d, m in zip(ids, docs, metas, strict=True):
            old = live.get(i)
            live[i] = (d if d is not None else (old[0] if old else None), m)
        gone = rng.sample(sorted(live), 8)
        col.delete(gone)
        for g in gone:
            del live[g]
        # a fresh document is found right after upsert returns; a deleted one never
        _check(col, live, "apple banana", 5)
    return live


QUERIES = ["apple", "cherry fig", "kiwi lemon mango", "tango", "apples and bananas", "zzz"]


def _check_all(col: keeldb.Collection, live: dict[str, Any]) -> None:
    for q in QUERIES:
        for k in (1, 7, 50):
            _check(col, live, q, k)
            _check(col, live, q, k, filter={"g": 1}, allowed=lambda m: m.get("g") == 1)
            _check(
                col,
                live,
                q,
                k,
                filter={"g": {"$in": [0, 2]}},
                allowed=lambda m: m.get("g") in (0, 2),
            )


@pytest.mark.parametrize("seed", [1, 2])
def test_text_search_matches_oracle_across_units(db_path: str, seed: int) -> None:
    rng = random.Random(seed)
    flat: dict[str, Any] = {"background": False, "memtable_rows": 100, "hnsw_min_rows": 10**6}
    with keeldb.open(db_path, **flat) as db:
        col = db.create_collection("c", dim=8)
        live = _run_workload(col, rng, 12)
        assert len(col.stats().segments) > 2  # memtable plus several flat segments
        _check_all(col, live)
    opts = {**flat, "hnsw_min_rows": 150}
    with keeldb.open(db_path, **opts) as db:  # reopen after a clean close
        col = db.get_collection("c")
        _check_all(col, live)
        col.compact()  # merge to HNSW: rows reordered by graph locality
        assert any(s.kind == "hnsw" for s in col.stats().segments)
        _check_all(col, live)
        live = _run_workload(col, rng, 3, live)
        assert _current(col, live) == live
        _check_all(col, live)
    with keeldb.open(db_path, **opts) as db:
        col = db.get_collection("c")
        _check_all(col, live)


def _alive(col: keeldb.Collection, id_: str) -> bool:
    return col.get([id_])[0] is not None


def _current(col: keeldb.Collection, ids: dict[str, Any]) -> dict[str, Any]:
    """What the collection holds for every id it has (from get: the reference for the
    oracle after a workload whose expectations were tracked separately)."""
    out: dict[str, Any] = {}
    everything: list[keeldb.Record] = []
    cursor = None
    while True:
        page = col.scan(limit=1000, cursor=cursor)
        everything.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    for rec in everything:
        out[rec.id] = (rec.document, rec.metadata)
    return out


def test_acknowledged_documents_found_after_crash(db_path: str) -> None:
    rng = random.Random(7)
    opts: dict[str, Any] = {"background": False, "memtable_rows": 100}
    db = keeldb.open(db_path, **opts)
    col = db.create_collection("c", dim=8)
    live = _run_workload(col, rng, 6)  # seals some memtables, the rest is in the WAL
    db.abandon()  # crash: no shutdown code runs
    with keeldb.open(db_path, **opts) as db2:
        col2 = db2.get_collection("c")
        assert _current(col2, live) == live
        _check_all(col2, live)


def test_damaged_or_missing_postings_rebuilt_with_warning(db_path: str) -> None:
    opts: dict[str, Any] = {"background": False, "memtable_rows": 50}
    docs = [f"word{i % 7} common text {i}" for i in range(120)]
    with keeldb.open(db_path, **opts) as db:
        col = db.create_collection("c", dim=8)
        vecs = np.random.default_rng(0).standard_normal((120, 8)).astype(np.float32)
        ids = [f"i{i}" for i in range(120)]
        for lo in range(0, 120, 50):  # three segments
            col.upsert(ids[lo : lo + 50], vecs[lo : lo + 50], documents=docs[lo : lo + 50])
        before = sorted((h.id, h.score) for h in col.text_search("word3 text", 200))
    posts = sorted(glob.glob(os.path.join(db_path, "**", "*.post"), recursive=True))
    assert len(posts) >= 2
    os.remove(posts[0])
    with open(posts[1], "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff\xff\xff")
    with pytest.warns(RuntimeWarning, match="rebuilding"), keeldb.open(db_path, **opts) as db:
        col = db.get_collection("c")
        assert sorted((h.id, h.score) for h in col.text_search("word3 text", 200)) == before
    with keeldb.open(db_path, **opts) as db:  # rebuilt files verify now: no warning
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("error")
            col = db.get_collection("c")
            assert sorted((h.id, h.score) for h in col.text_search("word3 text", 200)) == before


def test_text_search_arguments_and_options(db_path: str) -> None:
    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=4)
        col.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], [{"x": 1}, {}],
                   documents=["The running fox", None])  # fmt: skip
        (hit,) = col.text_search("runs")  # stemmed like the documents
        assert hit.id == "a" and hit.document == "The running fox" and hit.score > 0  # type: ignore[operator]
        (bare,) = col.text_search("fox", with_documents=False, with_metadata=False)
        assert bare.document is None and bare.metadata is None
        assert col.text_search("the") == []  # a stop word only: no terms
        for bad in ({"query": 3}, {"query": "x", "k": 0}, {"query": "x", "with_documents": 2}):
            with pytest.raises(InvalidArgumentError):
                col.text_search(**bad)  # type: ignore[arg-type]


def test_check_reports_damaged_text_files(db_path: str) -> None:
    from keeldb.engine.check import check

    with keeldb.open(db_path, background=False) as db:
        col = db.create_collection("c", dim=4)
        col.upsert(["a", "b"], [[1, 0, 0, 0], [0, 1, 0, 0]], documents=["one fish", "two"])
    assert check(db_path).ok
    (post,) = glob.glob(os.path.join(db_path, "**", "*.post"), recursive=True)
    (docs,) = glob.glob(os.path.join(db_path, "**", "*.docs"), recursive=True)
    with open(post, "r+b") as f:
        f.seek(40)
        f.write(b"\xff\xff\xff\xff")
    report = check(db_path)
    assert any("text index (rebuildable on open)" in p for p in report.problems)
    os.remove(docs)
    report = check(db_path)
    assert any("missing file" in p and ".docs" in p for p in report.problems)


def test_stats_report_the_text_index(db_path: str) -> None:
    vec = np.ones((1, 4), dtype=np.float32)
    with keeldb.open(db_path, background=False, memtable_rows=4) as db:
        col = db.create_collection("c", dim=4)
        assert col.stats().text is not None and col.stats().text.documents == 0
        docs = ["apple banana", "banana cherry cherry", "the of", None, "date"]
        for i, d in enumerate(docs):
            col.upsert([f"d{i}"], vec, documents=[d])
        st = col.stats().text
        assert st is not None
        # "the of" holds only stop words and the None row no document: 3 documents.
        assert st.documents == 3
        assert st.postings == 5  # apple, banana | banana, cherry | date
        assert st.memory_bytes > 0
        col.flush()
        col.compact()
        sealed = col.stats().text
        assert sealed is not None and sealed.documents == 3 and sealed.postings == 5
        post = glob.glob(os.path.join(db_path, "**", "*.post"), recursive=True)
        assert post and sealed.disk_bytes == sum(os.path.getsize(p) for p in post)
        col.delete(["d0"])
        assert col.stats().text.documents == 2  # live documents only, at once
