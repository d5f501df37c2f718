"""Empty batches are a no-op everywhere (issue 17, item 1).

``upsert([], np.zeros((0, dim)))`` raised ``TypeError`` from a memoryview cast in the WAL
encoder, and ``upsert([], [])`` refused the (0,)-shaped array of an empty list.
"""

from __future__ import annotations

import numpy as np
import pytest

import keeldb
from keeldb import DimensionMismatchError, InvalidArgumentError
from keeldb.engine.validation import validate_vectors


def _vecs(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


@pytest.mark.parametrize("empty", [np.zeros((0, 4)), [], np.zeros((0,)), np.zeros((0, 4), "f8")])
@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_validate_vectors_accepts_an_empty_batch(empty: object, metric: str) -> None:
    arr = validate_vectors(empty, 0, 4, metric)
    assert arr.shape == (0, 4)
    assert arr.dtype == np.float32


def test_validate_vectors_empty_batch_of_the_wrong_width_is_still_refused() -> None:
    with pytest.raises(DimensionMismatchError, match="dimension 5"):
        validate_vectors(np.zeros((0, 5)), 0, 4, "l2")
    with pytest.raises(InvalidArgumentError, match="1 vectors for 0 ids"):
        validate_vectors(np.zeros((1, 4)), 0, 4, "l2")


@pytest.mark.parametrize("empty", [np.zeros((0, 4)), []])
def test_empty_upsert_and_delete_change_nothing(db_path: str, empty: object) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("z", dim=4)
        col.upsert(["a", "b"], _vecs(2), [{"k": 1}, None])
        col.upsert([], empty)
        col.upsert([], empty, [])
        col.upsert([], empty, None)
        assert col.delete([]) == 0
        assert col.count() == 2
    with keeldb.open(db_path) as db:  # the log replays (empty records included)
        col = db.get_collection("z")
        assert col.count() == 2
        assert col.get(["a"])[0].metadata == {"k": 1}


@pytest.mark.parametrize("empty", [np.zeros((0, 4)), []])
def test_empty_operations_inside_a_transaction(db_path: str, empty: object) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("z", dim=4)
        with col.transaction() as tx:
            tx.upsert([], empty)
            tx.delete([])
        with col.transaction() as tx:
            tx.upsert([], empty)
            tx.upsert(["a"], _vecs(1))
            tx.delete([])
        assert col.count() == 1
    with keeldb.open(db_path) as db:
        assert db.get_collection("z").count() == 1


def test_empty_upsert_writes_no_wal_record(db: keeldb.Database) -> None:
    col = db.create_collection("z", dim=4)
    col.upsert(["a"], _vecs(1))
    before = col.stats().wal_bytes
    col.upsert([], np.zeros((0, 4)))
    col.upsert([], [])
    assert col.delete([]) == 0
    with col.transaction() as tx:
        tx.upsert([], [])
        tx.delete([])
    assert col.stats().wal_bytes == before


def test_empty_batch_on_a_closed_database_still_raises_closed(db_path: str) -> None:
    db = keeldb.open(db_path)
    col = db.create_collection("z", dim=4)
    db.close()
    with pytest.raises(keeldb.ClosedError):
        col.upsert([], [])
    with pytest.raises(keeldb.ClosedError):
        col.delete([])
