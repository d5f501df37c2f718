"""Id hashes: computed once per upserted id and carried through seals and merges."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import keeldb
from keeldb.storage.segment_files import id_hashes


def test_id_hashes_are_the_on_disk_format() -> None:
    ids = ["a", "é-ü", "x" * 512, ""]
    want = [
        int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "little") for i in ids
    ]
    got = id_hashes(ids)
    assert got.dtype == np.uint64 and got.tolist() == want
    assert id_hashes([]).shape == (0,)


def test_sealed_and_merged_segments_index_the_hashes_of_their_ids(db_path: str) -> None:
    rng = np.random.default_rng(5)
    n, dim = 2500, 8
    ids = [f"id-{i}-é" if i % 7 == 0 else str(i) for i in range(n)]
    kinds: set[str] = set()

    def check(col: keeldb.Collection) -> None:
        for seg in col._state.segments:
            kinds.add(seg.kind)
            rows = np.arange(seg.rows)
            seg_ids = seg.ids.ids_at(rows)
            assert seg.ids.row_hashes(rows).tolist() == id_hashes(seg_ids).tolist()

    # No background maintenance (its merge, about 0.5 s after the last write, could turn
    # the flat segments into an HNSW one before they are checked on a slow machine): the
    # first flush seals a flat segment, the last one merges into an HNSW one.
    with keeldb.open(db_path, memtable_rows=500, hnsw_min_rows=1000, background=False) as db:
        col = db.create_collection("c", dim=dim, m=4, ef_construction=16)
        for s in range(0, n, 250):
            col.upsert(ids[s : s + 250], rng.normal(size=(250, dim)).astype(np.float32))
            if s == 250:
                col.flush()
                check(col)
        col.delete(ids[:40])
        col.upsert(ids[40:60], rng.normal(size=(20, dim)).astype(np.float32))  # replaced
        col.flush()
        for _ in range(2):
            check(col)
            col.compact()
        check(col)
        assert {"flat", "hnsw"} <= kinds
        got = col.get(ids)
        assert [r is None for r in got] == [i < 40 for i in range(n)]


def test_ids_whose_hashes_collide_are_told_apart(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only three distinct hash values: every lookup walks a run of equal hashes and must
    compare the ids themselves (get, replace and delete across memtable and segments)."""
    from keeldb.engine import state as state_mod
    from keeldb.engine import writer as writer_mod
    from keeldb.storage import segment_files

    def colliding(ids: list[str]) -> np.ndarray:
        return np.array([len(i) % 3 for i in ids], dtype=np.uint64)

    monkeypatch.setattr(writer_mod, "id_hashes", colliding)
    monkeypatch.setattr(state_mod, "id_hashes", colliding)  # locate()
    monkeypatch.setattr(segment_files, "id_hashes", colliding)
    rng = np.random.default_rng(8)
    n, dim = 1500, 4
    ids = [f"k{i}" for i in range(n)]
    with keeldb.open(db_path, memtable_rows=400, hnsw_min_rows=1000) as db:
        col = db.create_collection("c", dim=dim, m=4, ef_construction=16)
        for s in range(0, n, 300):
            col.upsert(
                ids[s : s + 300],
                rng.normal(size=(300, dim)).astype(np.float32),
                [{"v": 0, "i": i} for i in range(s, s + 300)],
            )
        col.flush()
        col.compact()
        col.upsert(
            ids[::10],
            rng.normal(size=(len(ids[::10]), dim)).astype(np.float32),
            [{"v": 1, "i": i} for i in range(0, n, 10)],
        )
        assert col.delete(ids[5::10]) == len(ids[5::10])
        col.flush()
        for _ in range(2):
            got = col.get(ids)
            for i, rec in enumerate(got):
                if i % 10 == 5:
                    assert rec is None
                else:
                    assert rec is not None and rec.id == ids[i]
                    assert rec.metadata == {"v": int(i % 10 == 0), "i": i}
            assert col.count() == n - len(ids[5::10])
            col.compact()
