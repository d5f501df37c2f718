"""Dead-row masks are copy-on-write: a mask a reader took never changes under it.

Readers search without locks while the write path deletes and overwrites rows. They index
numbers with the unit's dead mask (``dist[:, dead] = inf``, ``match & ~dead``), and numpy
sizes its buffers from the mask's count of True before it reads the mask again, with the
GIL released. When the writer set entries of that same mask in place meanwhile, numpy
wrote past its buffer and corrupted the heap (the kill -9 soak's writer died with
"malloc(): invalid next size"). Each unit now publishes a new read-only mask per kill;
these tests pin that contract for the memtable, sealed segments and both postings kinds.
"""

from __future__ import annotations

import numpy as np
import pytest

import keeldb
from keeldb.engine.memtable import Memtable
from keeldb.text.postings import MemPostings, SealedPostings


def _assert_snapshot_kept(before: np.ndarray, after: np.ndarray, killed: list[int]) -> None:
    assert not before.flags.writeable  # nobody can change a published mask in place
    assert not after.flags.writeable
    assert not before[killed].any()  # the reader's mask is unchanged...
    assert after[killed].all()  # ...while the unit's current one has the rows dead


def test_memtable_kill_publishes_a_new_mask() -> None:
    mem = Memtable(4, "l2", capacity=8)
    mem.append([f"r{i}" for i in range(6)], np.ones((6, 4), np.float32), [{}] * 6,
               np.arange(6, dtype=np.uint64))  # fmt: skip
    before = mem.dead
    assert mem.kill(np.array([1, 4])) == 2
    _assert_snapshot_kept(before, mem.dead, [1, 4])
    assert mem.dead_count == 2


def test_memtable_growth_keeps_dead_rows_and_the_snapshot() -> None:
    mem = Memtable(4, "l2", capacity=2)
    mem.append(["a", "b"], np.ones((2, 4), np.float32), [{}, {}], np.arange(2, dtype=np.uint64))
    mem.kill(np.array([0]))
    before = mem.dead
    mem.append(["c", "d", "e"], np.ones((3, 4), np.float32), [{}] * 3,
               np.arange(3, dtype=np.uint64))  # fmt: skip
    assert mem.dead[0] and not mem.dead[1:5].any()
    assert not mem.dead.flags.writeable
    mem.kill(np.array([3]))
    assert not before[1:].any() and before[0]


def test_spare_memtable_is_read_only_after_prefault() -> None:
    mem = Memtable(4, "cosine", capacity=16)
    mem.prefault()
    assert not mem.dead.flags.writeable and not mem.dead.any()


def test_segment_kill_publishes_a_new_mask(db_path: str) -> None:
    with keeldb.open(db_path, memtable_rows=50, hnsw_min_rows=10_000, background=False) as db:
        col = db.create_collection("c", 4, "l2")
        col.upsert([f"r{i}" for i in range(100)], np.random.default_rng(0).normal(size=(100, 4)))
        col.compact()
        (seg,) = col._state.segments
        before = seg.dead
        col.delete(["r3", "r7"])
        rows = [int(r) for r in np.flatnonzero(seg.dead)]
        assert len(rows) == 2
        _assert_snapshot_kept(before, seg.dead, rows)
        assert seg.dead_count == 2


@pytest.mark.parametrize("kind", ["memory", "sealed"])
def test_postings_mark_dead_publishes_a_new_mask(kind: str) -> None:
    tokens = [["a", "b"], ["b"], ["c"], ["a"]]
    unit: MemPostings | SealedPostings
    if kind == "memory":
        unit = MemPostings()
        unit.append(tokens)
    else:
        unit = SealedPostings.build(tokens)
    before = unit.dead
    unit.mark_dead(np.array([0, 2]))
    _assert_snapshot_kept(before, unit.dead, [0, 2])
    assert unit.dead_count == 2 and unit.live_docs == 2
