"""``Collection.off_search``: a callback stops being called once unregistered."""

from __future__ import annotations

import numpy as np

import keeldb


def test_off_search_unregisters_only_that_callback(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32))
    first: list[keeldb.SearchStats] = []
    second: list[keeldb.SearchStats] = []
    col.on_search(first.append)
    col.on_search(second.append)
    query = np.ones(4, dtype=np.float32)
    col.search(query, k=1)
    col.off_search(first.append)
    col.search(query, k=1)
    assert (len(first), len(second)) == (1, 2)
    col.off_search(first.append)  # not registered any more: a no-op
    col.off_search(second.append)
    col.search(query, k=1)
    assert (len(first), len(second)) == (1, 2)
