"""The generated document-length family (bench/text_lengths.py): fixed by its seed, each
document within its member's sentence range."""

from __future__ import annotations

from bench.text_lengths import MEMBERS, documents, sentences


def test_documents_are_fixed_by_the_seed_and_sized_by_the_member() -> None:
    pool = sentences(
        [" ".join(f"Claim {a}.{i} reads like a sentence." for i in range(6)) for a in range(9)]
    )
    assert len(pool) == 54
    for name, (lo, hi) in MEMBERS.items():
        a = documents(pool, 200, (lo, hi), seed=1)
        assert a == documents(pool, 200, (lo, hi), seed=1), name
        assert a != documents(pool, 200, (lo, hi), seed=2), name
        counts = [d.count("reads like") for d in a]
        assert min(counts) >= lo and max(counts) <= hi, name
        assert min(counts) == lo and max(counts) == hi, name  # 200 draws reach both ends
