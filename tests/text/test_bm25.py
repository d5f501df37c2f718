"""BM25 over memtable and sealed units against a brute-force Python oracle."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from text_util import on_both_paths, split_units

from keeldb.errors import InvalidArgumentError
from keeldb.text import BM25Params, MemPostings, SealedPostings, bm25_search
from keeldb.text import bm25 as bm25_mod
from keeldb.text import postings as postings_mod

WORDS = [f"w{i}" for i in range(40)]


scoring_path = on_both_paths(bm25_mod)


def _docs(rng: random.Random, n: int) -> list[list[str]]:
    # Zipf-ish: low word ids are common; some rows have no terms.
    return [
        [WORDS[min(int(rng.expovariate(0.15)), 39)] for _ in range(rng.randint(0, 12))]
        for _ in range(n)
    ]


def _oracle(docs, live, allowed, terms, k, k1=1.2, b=0.75):
    """Plain-Python BM25 (Lucene IDF) over live docs; top k of allowed with score > 0."""
    live_docs = [d for d, alive in zip(docs, live, strict=True) if alive and d]
    n = len(live_docs)
    avgdl = sum(map(len, live_docs)) / n if n else 1.0
    q = list(dict.fromkeys(terms))
    idf = {}
    for t in q:
        df = sum(1 for d in live_docs if t in d)
        idf[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    scored = []
    for i, d in enumerate(docs):
        if not (live[i] and allowed[i]):
            continue
        s = 0.0
        for t in q:
            tf = d.count(t)
            if tf:
                s += idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
        if s > 0:
            scored.append((s, i))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return scored[:k]


def _check(units, docs, cut, live, allowed, terms, k):
    got = bm25_search(
        units, terms, k, allowed=[allowed[:cut], allowed[cut:]] if allowed is not None else None
    )
    allow = allowed if allowed is not None else np.ones(len(docs), bool)
    want = _oracle(docs, live, allow, terms, k)
    global_rows = [int(r) + (cut if u == 1 else 0) for u, r in zip(got.unit, got.row, strict=True)]
    assert global_rows == [i for _, i in want]
    np.testing.assert_allclose(got.score, [s for s, _ in want], rtol=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_matches_oracle_with_deletes_and_filters(seed: int) -> None:
    rng = random.Random(seed)
    docs = _docs(rng, 300)
    cut = 170
    sealed, mem = split_units(docs, cut)
    live = np.ones(len(docs), bool)
    for _ in range(4):
        terms = rng.sample(WORDS, rng.randint(1, 4)) + ["unknown"]
        allowed = np.array([rng.random() < 0.6 for _ in docs]) & live
        _check([sealed, mem], docs, cut, live, None, terms, 10)
        _check([sealed, mem], docs, cut, live, allowed, terms, 5)
        kill = rng.sample(range(len(docs)), 25)
        live[kill] = False
        ks = np.array([i for i in kill if i < cut], dtype=np.int64)
        km = np.array([i - cut for i in kill if i >= cut], dtype=np.int64)
        sealed.mark_dead(ks)
        mem.mark_dead(km)
        mem.mark_dead(km)  # idempotent


def test_deleted_document_vanishes_and_idf_is_global() -> None:
    mem = MemPostings()
    mem.append([["apple", "pie"], ["apple"], ["banana"]])
    sealed = SealedPostings.build([["apple", "tart"], ["cherry"]])
    hits = bm25_search([sealed, mem], ["apple"], 10)
    assert len(hits) == 3
    before = float(hits.score[0])
    mem.mark_dead(np.array([1]))
    hits = bm25_search([sealed, mem], ["apple"], 10)
    assert sorted(zip(hits.unit.tolist(), hits.row.tolist(), strict=True)) == [(0, 0), (1, 0)]
    # df(apple) fell from 3 to 2 and N from 5 to 4: the same global IDF in both units.
    idf = math.log(1 + (4 - 2 + 0.5) / (2 + 0.5))
    assert idf != pytest.approx(math.log(1 + (5 - 3 + 0.5) / (3 + 0.5)))
    avgdl = (2 + 1 + 2 + 1) / 4
    want = idf * 1 * 2.2 / (1 + 1.2 * (1 - 0.75 + 0.75 * 2 / avgdl))
    np.testing.assert_allclose(hits.score, [want, want])
    assert before != pytest.approx(want)


def test_memtable_searchable_right_after_append_and_across_folds(monkeypatch) -> None:
    monkeypatch.setattr(postings_mod, "TAIL_MIN_POSTINGS", 16)
    rng = random.Random(3)
    docs = _docs(rng, 400)
    mem = MemPostings()
    for i, d in enumerate(docs):
        rows = mem.append([d])
        assert rows.tolist() == [i]
        if d:
            got = bm25_search([mem], [d[0]], 1000)
            assert i in got.row.tolist()
    sealed = SealedPostings.build(docs)
    for t in WORDS[:10]:
        a = bm25_search([mem], [t], 50)
        b = bm25_search([sealed], [t], 50)
        assert a.row.tolist() == b.row.tolist()
        np.testing.assert_allclose(a.score, b.score)


def test_merge_remaps_rows_and_drops() -> None:
    rng = random.Random(9)
    docs_a, docs_b = _docs(rng, 50), _docs(rng, 40)
    a = SealedPostings.build(docs_a)
    mem = MemPostings()
    mem.append(docs_b)
    map_a = np.arange(50)
    map_a[::5] = -1  # dropped
    kept_a = [d for i, d in enumerate(docs_a) if i % 5]
    map_a[map_a >= 0] = np.arange(len(kept_a))[::-1] + 40  # reversed, after b's rows
    map_b = np.arange(40)
    merged = SealedPostings.merge([(a, map_a), (mem, map_b)], 40 + len(kept_a))
    expected = list(docs_b) + kept_a[::-1]
    reference = SealedPostings.build(expected)
    assert merged.terms == reference.terms
    np.testing.assert_array_equal(merged.lengths, reference.lengths)
    np.testing.assert_array_equal(merged.arrays.term_offsets, reference.arrays.term_offsets)
    np.testing.assert_array_equal(merged.arrays.post_rows, reference.arrays.post_rows)
    np.testing.assert_array_equal(merged.arrays.post_tf, reference.arrays.post_tf)


def test_seal_drops_dead_rows() -> None:
    mem = MemPostings()
    mem.append([["a", "b"], ["b"], ["c", "c"]])
    mem.mark_dead(np.array([1]))
    sealed = mem.seal()
    assert sealed.rows == 2
    assert sealed.terms == ["a", "b", "c"]
    assert sealed.lengths.tolist() == [2, 2]
    assert [p[0].tolist() for p in sealed.lookup(["a", "b", "c"])] == [[0], [0], [1]]


def test_stats_and_arguments() -> None:
    mem = MemPostings()
    mem.append([["a", "a", "b"], [], ["b"]])
    assert (mem.live_docs, mem.live_total_len) == (2, 4)
    mem.mark_dead(np.array([0, 1]))
    assert (mem.live_docs, mem.live_total_len) == (1, 1)
    with pytest.raises(IndexError):
        mem.mark_dead(np.array([3]))
    with pytest.raises(InvalidArgumentError):
        bm25_search([mem], ["a"], 0)
    with pytest.raises(InvalidArgumentError):
        BM25Params(b=2.0)
    assert len(bm25_search([mem], [], 5)) == 0
    assert len(bm25_search([], ["a"], 5)) == 0


def test_ties_are_broken_by_row_whatever_the_boundary() -> None:
    # 50 identical documents tie; the top 3 must be the first 3 rows, in each unit and
    # across units (unit, then row).
    docs = [["x", "y"]] * 50 + [["x"]] * 5
    sealed = SealedPostings.build(docs)
    hits = bm25_search([sealed], ["x", "y"], 3)
    assert hits.row.tolist() == [0, 1, 2]
    mem = MemPostings()
    mem.append(docs)
    hits = bm25_search([mem, sealed], ["x", "y"], 4)
    assert list(zip(hits.unit.tolist(), hits.row.tolist(), strict=True)) == [
        (0, 0), (0, 1), (0, 2), (0, 3),
    ]  # fmt: skip
    dead = np.arange(0, 50, 2)
    sealed.mark_dead(dead)
    assert bm25_search([sealed], ["x", "y"], 3).row.tolist() == [1, 3, 5]


def test_match_mask_all_and_any() -> None:
    from keeldb.text import match_mask

    docs = [["a", "b"], ["b"], ["a", "c", "b"], [], ["c"]]
    sealed = SealedPostings.build(docs)
    mem = MemPostings()
    mem.append(docs)
    for unit in (sealed, mem):
        assert match_mask(unit, ["a", "b"]).tolist() == [True, False, True, False, False]
        assert match_mask(unit, ["b", "a", "b"]).tolist() == [True, False, True, False, False]
        assert match_mask(unit, ["a", "zzz"]).tolist() == [False] * 5
        assert match_mask(unit, ["a", "c"], require_all=False).tolist() == [
            True, False, True, False, True,
        ]  # fmt: skip
        assert not match_mask(unit, []).any()


def test_indexing_a_batch_never_walks_the_whole_vocabulary() -> None:
    # Term ids are assigned per distinct term of the batch, never by a pass over the
    # vocabulary (that would make every write O(vocabulary)).
    class NoWalk(dict):
        def keys(self):  # type: ignore[override]
            raise AssertionError("walked the vocabulary")

        def __iter__(self):  # type: ignore[override]
            raise AssertionError("walked the vocabulary")

    vocab = NoWalk()
    tids, rows, tf, lengths = postings_mod.coo_from_tokens([["a", "b", "a"], ["b"]], vocab)
    assert dict(dict.items(vocab)) == {"a": 0, "b": 1}
    assert [tids.tolist(), rows.tolist(), tf.tolist(), lengths.tolist()] == [
        [0, 1, 1], [0, 0, 1], [2, 1, 1], [3, 1],
    ]  # fmt: skip
    postings_mod.coo_from_tokens([["c", "a"]], vocab, first_row=2)
    assert dict(dict.items(vocab)) == {"a": 0, "b": 1, "c": 2}


def test_memtable_append_never_walks_the_whole_vocabulary() -> None:
    # Regression: MemPostings.append listed the whole vocabulary to find its new terms.
    class NoWalk(dict):
        def keys(self):  # type: ignore[override]
            raise AssertionError("walked the vocabulary")

        def __iter__(self):  # type: ignore[override]
            raise AssertionError("walked the vocabulary")

    mem = MemPostings()
    mem._vocab = NoWalk()
    mem.append([["a", "b"], ["b"]])
    mem.append([["c", "a"]])
    assert mem._terms == ["a", "b", "c"]
    assert [p[0].tolist() for p in mem.lookup(["a", "b", "c"])] == [[0, 2], [0, 1], [2]]
