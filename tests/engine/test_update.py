"""Collection.update: metadata-only changes that keep vectors, merge or replace."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError


def _col(db: keeldb.Database) -> keeldb.Collection:
    col = db.create_collection("c", dim=4)
    vecs = np.arange(12, dtype=np.float32).reshape(3, 4) + 1
    col.upsert(["a", "b", "c"], vecs, [{"x": 1, "y": 2}, {"x": 3}, None])
    return col


def test_merge_sets_keys_removes_none_and_keeps_vectors(tmp_path: Path) -> None:
    with keeldb.open(tmp_path / "db") as db:
        col = _col(db)
        before = {r.id: r.vector for r in col.get(["a", "b"]) if r is not None}
        missing = col.update(["a", "b", "zz"], [{"y": None, "z": "new"}, {"x": 4}, {"q": 1}])
        assert missing == ["zz"]
        a, b, zz = col.get(["a", "b", "zz"])
        assert zz is None and col.count() == 3  # a missing id is not created
        assert a is not None and a.metadata == {"x": 1, "z": "new"}
        assert b is not None and b.metadata == {"x": 4}
        assert np.array_equal(a.vector, before["a"]) and np.array_equal(b.vector, before["b"])
        assert [h.id for h in col.search(before["a"], k=1, filter={"z": "new"})] == ["a"]
    with keeldb.open(tmp_path / "db") as db:  # logged like any write: survives reopen
        rec = db.get_collection("c").get(["a"])[0]
        assert rec is not None and rec.metadata == {"x": 1, "z": "new"}


def test_replace_mode_and_bad_arguments(tmp_path: Path) -> None:
    with keeldb.open(tmp_path / "db") as db:
        col = _col(db)
        assert col.update(["a"], [{"only": True}], mode="replace") == []
        rec = col.get(["a"])[0]
        assert rec is not None and rec.metadata == {"only": True}
        with pytest.raises(InvalidArgumentError):
            col.update(["a"], [{"k": 1}], mode="upsert")
        with pytest.raises(InvalidArgumentError):
            col.update(["a"], [None])  # type: ignore[list-item]
        with pytest.raises(InvalidArgumentError):
            col.update(["a", "b"], [{"k": 1}])
        assert col.update(["nope"], [{"k": 1}]) == ["nope"] and col.count() == 3
