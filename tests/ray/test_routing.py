"""Routing and merging, without Ray: the hash is stable and even, merges are exact."""

from __future__ import annotations

import numpy as np

from keeldb.ray.merge import merge_hits, merge_pages
from keeldb.ray.routing import shard_of, split_positions
from keeldb.types import Hit, Page, Record


def _reference_shard(id_: str, count: int) -> int:
    """The documented hash, one code point at a time in plain Python."""
    mask = (1 << 64) - 1
    h = 0xCBF29CE484222325
    for ch in id_.rstrip("\x00"):
        h = ((h ^ ord(ch)) * 0x100000001B3) & mask
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & mask
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & mask
    h ^= h >> 33
    return h % count


def test_hash_matches_the_documented_algorithm() -> None:
    ids = ["a", "doc-1", "doc-2", "é", "日本語", "x" * 512, "emoji-\U0001f600", "tail\x00"]
    for count in (2, 3, 4, 7, 64):
        got = shard_of(ids, count).tolist()
        assert got == [_reference_shard(i, count) for i in ids]


def test_hash_values_are_pinned() -> None:
    # Changing these re-routes every existing database: this must never change.
    assert shard_of(["a", "b", "doc-42", "日本語"], 4).tolist() == [3, 0, 2, 3]
    assert shard_of(["a", "b", "doc-42"], 1000).tolist() == [315, 704, 302]


def test_routing_does_not_depend_on_the_batch() -> None:
    ids = [f"id-{i}" for i in range(1000)]
    alone = [int(shard_of([i], 5)[0]) for i in ids[:50]]
    with_long = shard_of([*ids[:50], "y" * 400], 5)[:50].tolist()
    assert alone == with_long == shard_of(ids, 5)[:50].tolist()


def test_routing_is_even() -> None:
    counts = np.bincount(shard_of([f"doc-{i}" for i in range(40_000)], 4), minlength=4)
    assert counts.min() > 9_500 and counts.max() < 10_500


def test_split_positions_partitions_the_batch() -> None:
    shards = np.array([2, 0, 2, 1, 0, 2])
    parts = split_positions(shards, 4)
    assert set(parts) == {0, 1, 2}
    assert parts[0].tolist() == [1, 4]
    assert parts[1].tolist() == [3]
    assert parts[2].tolist() == [0, 2, 5]


def test_merge_hits_is_the_top_k_by_distance_then_id() -> None:
    rng = np.random.default_rng(3)
    parts = []
    everything: list[list[Hit]] = [[], []]
    for s in range(3):
        part = []
        for q in range(2):
            n = int(rng.integers(0, 6))
            hits = sorted(
                (Hit(f"s{s}-{j}", float(rng.integers(0, 4)), None) for j in range(n)),
                key=lambda h: (h.distance, h.id),
            )
            part.append(hits)
            everything[q].extend(hits)
        parts.append(part)
    merged = merge_hits(parts, 4)
    for q in range(2):
        assert merged[q] == sorted(everything[q], key=lambda h: (h.distance, h.id))[:4]


def test_merge_pages_is_a_k_way_merge_by_id() -> None:
    vec = np.zeros(2, dtype=np.float32)
    a = Page([Record(x, vec, {}) for x in ["a", "c", "e"]], "e")
    b = Page([Record(x, vec, {}) for x in ["b", "d"]], None)
    page = merge_pages([a, b], 3)
    assert [r.id for r in page.records] == ["a", "b", "c"]
    assert page.next_cursor == "c"
    last = merge_pages([Page([Record("f", vec, {})], None), Page([], None)], 3)
    assert [r.id for r in last.records] == ["f"] and last.next_cursor is None


def test_public_surface() -> None:
    import keeldb.ray
    from keeldb.errors import error_classes

    assert keeldb.ray.__all__ == [
        "CrossShardTransactionError",
        "PartialCount",
        "PartialHits",
        "ShardCountMismatchError",
        "ShardInfo",
        "ShardUnavailableError",
        "ShardedCollection",
        "ShardedDatabase",
        "ShardingError",
    ]
    codes = error_classes()
    assert codes["shard_unavailable"] is keeldb.ray.ShardUnavailableError
    assert codes["shard_count_mismatch"].status == 409


def test_merged_info_of_a_collection_damaged_on_one_shard_is_damaged() -> None:
    from keeldb.ray.merge import merge_info
    from keeldb.types import CollectionInfo

    ok = CollectionInfo("c", "default", 4, "l2", 10, 16, 200, 64, 1.0, "flat")
    bad = CollectionInfo("c", "default", 4, "l2", -1, 16, 200, 64, 1.0, "damaged", "crc")
    assert merge_info([ok, ok]).count == 20
    merged = merge_info([ok, bad])
    assert (merged.count, merged.index_type, merged.damaged) == (-1, "damaged", "crc")
