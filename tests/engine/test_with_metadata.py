"""``with_metadata=False``: the same hits, ids and distances, with metadata left as None."""

from __future__ import annotations

import numpy as np
import pytest

import keeldb
from keeldb.errors import InvalidArgumentError


def _ids_dists(hits: list[keeldb.Hit]) -> list[tuple[str, float]]:
    return [(h.id, h.distance) for h in hits]


@pytest.mark.parametrize("layout", ["memtable", "one_segment", "many_units"])
def test_hits_are_the_same_without_metadata(db_path: str, layout: str) -> None:
    rng = np.random.default_rng(11)
    n, dim = 2500, 16
    base = rng.normal(size=(n, dim)).astype(np.float32)
    meta = [{"i": i, "g": i % 3, "text": f"row {i}"} for i in range(n)]
    with keeldb.open(db_path, memtable_rows=1000, hnsw_min_rows=1000) as db:
        col = db.create_collection("c", dim=dim, metric="cosine", m=8, ef_construction=32)
        if layout == "memtable":
            col.upsert([str(i) for i in range(300)], base[:300], meta[:300])
        else:
            col.upsert([str(i) for i in range(n)], base, meta)
            col.compact()
            if layout == "many_units":
                col.delete([str(i) for i in range(0, n, 5)])
                col.upsert(
                    [f"x{i}" for i in range(40)], base[:40] + 0.01, [{"x": i} for i in range(40)]
                )
        units = {s.kind for s in col.stats().segments}
        assert (layout == "memtable") == (units == {"memtable"})
        qs = rng.normal(size=(25, dim)).astype(np.float32)
        for kwargs in ({}, {"filter": {"g": 1}}, {"exact": True}):
            full = col.search_batch(qs, k=10, **kwargs)  # type: ignore[arg-type]
            bare = col.search_batch(qs, k=10, with_metadata=False, **kwargs)  # type: ignore[arg-type]
            assert [_ids_dists(h) for h in bare] == [_ids_dists(h) for h in full]
            assert all(h.metadata is None for hits in bare for h in hits)
            assert all(isinstance(h.metadata, dict) for hits in full for h in hits)
            one = col.search(qs[0], k=10, with_metadata=False, **kwargs)  # type: ignore[arg-type]
            assert _ids_dists(one) == _ids_dists(col.search(qs[0], k=10, **kwargs))  # type: ignore[arg-type]
            assert all(h.metadata is None for h in one)
        # k larger than what is there: the gaps path gives the same short lists
        few = col.search_batch(qs[:3], k=10, filter={"i": {"$lt": 4}}, with_metadata=False)
        assert [_ids_dists(h) for h in few] == [
            _ids_dists(h) for h in col.search_batch(qs[:3], k=10, filter={"i": {"$lt": 4}})
        ]
        assert 0 < len(few[0]) < 10


def test_with_metadata_must_be_a_bool(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a"], [[1.0, 0.0, 0.0, 0.0]])
    for bad in (0, 1, "no", None):
        with pytest.raises(InvalidArgumentError, match="with_metadata must be"):
            col.search([1.0, 0.0, 0.0, 0.0], with_metadata=bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="with_metadata must be"):
            col.search_batch([[1.0, 0.0, 0.0, 0.0]], with_metadata=bad)  # type: ignore[arg-type]
