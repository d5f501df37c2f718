"""The memtable and sealed segments behind one Unit interface (issue 13)."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

import keeldb
from keeldb.engine.filter_cache import compile_keyed
from keeldb.engine.unit import Unit

SRC = pathlib.Path(keeldb.__file__).parent


def _units(col: keeldb.Collection) -> list[Unit]:
    state = col._state
    return [*state.memtables, *state.segments]


@pytest.fixture()
def col(db_path: str):  # type: ignore[no-untyped-def]
    """A collection with a flat segment, an HNSW segment and a memtable, with deletes."""
    opts = dict(memtable_rows=200, hnsw_min_rows=300, max_segment_rows=400, background=False)
    with keeldb.open(db_path, **opts) as db:
        c = db.create_collection("c", dim=8, metric="l2")
        rng = np.random.default_rng(1)
        # 400 rows: an HNSW segment (full); 200: a flat one (too few for a graph); 150 stay
        for start, n in ((0, 400), (400, 200), (600, 150)):
            ids = [f"id{i:04d}" for i in range(start, start + n)]
            c.upsert(ids, rng.normal(size=(n, 8)), [{"g": i % 3} for i in range(start, start + n)])
        c.delete([f"id{i:04d}" for i in range(0, 750, 7)])
        assert c.count() == 750 - len(range(0, 750, 7))
        yield c


def test_a_collection_mixes_unit_kinds(col: keeldb.Collection) -> None:
    kinds = {s.kind for s in col.stats().segments if s.rows}
    assert {"memtable", "flat", "hnsw"} <= kinds
    names = [u.name for u in _units(col)]
    assert len(set(names)) == len(names) and "mem" in names


def test_live_matching_agrees_with_a_row_by_row_reading(col: keeldb.Collection) -> None:
    flt = compile_keyed({"g": 1})
    total = 0
    for unit in _units(col):
        allowed = unit.live_matching(flt)
        rows = allowed.rows()
        assert allowed.count == len(rows)
        ids = unit.ids_of(rows)
        metas = unit.payload(rows.tolist())[1]
        assert all(m is not None and m["g"] == 1 for m in metas)
        assert all(int(i[2:]) % 7 for i in ids)  # deleted rows are not live
        live = unit.live_matching(None)
        assert live.count == unit.live_count == unit.rows - unit.dead_count
        total += allowed.count
    assert total == col.count({"g": 1})


def test_kill_changes_tombstones_only_through_the_unit(col: keeldb.Collection) -> None:
    for unit in _units(col):
        live = unit.live_matching(None).rows()
        if not len(live):
            continue
        before = unit.dead_count
        target = live[:2]
        assert unit.kill(np.array([target[0], target[0], -1, *target])) == len(target)
        assert unit.kill(target) == 0  # already dead
        assert unit.dead_count == before + len(target)
        assert not unit.live_matching(None).mask[target].any()


def test_sorted_ids_records_and_search_results(col: keeldb.Collection) -> None:
    q = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    for unit in _units(col):
        ids, order = unit.sorted_ids()
        assert ids.tolist() == sorted(ids.tolist()) and len(ids) == unit.rows
        assert unit.sorted_ids()[0] is ids  # kept
        row = int(order[0])
        vec, meta = unit.record(row)
        assert vec.shape == (8,) and meta == unit.metadata_at(row)
        assert unit.ids_of(np.array([row])) == [ids[0]]
        res = unit.search(q, 5, 32, None)
        assert res.rows.shape == (3, 5) and res.matched == unit.live_count
        assert not set(res.rows.ravel().tolist()) & set(
            np.flatnonzero(~unit.live_matching(None).mask).tolist()
        )


def test_no_isinstance_dispatch_on_units_and_no_faiss_outside_index() -> None:
    engine = SRC / "engine"
    for path in engine.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"isinstance\([^)]*(Memtable|Segment)\b", text), path
        assert "_sorted_ids = " not in text or path.name in ("segment.py", "memtable.py")
    for path in SRC.rglob("*.py"):
        if path.parent.name == "index":
            continue
        assert not re.search(r"^\s*(import faiss|from faiss)", path.read_text(), re.M), path
