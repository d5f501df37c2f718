"""The embedded API's contract: lifecycle, upsert/get/delete semantics, validation."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest

import keeldb
from keeldb import (
    AlreadyExistsError,
    ClosedError,
    CollectionNotFoundError,
    DatabaseLockedError,
    DimensionMismatchError,
    InvalidArgumentError,
)


def vecs(n: int, dim: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


# --- databases and collections ------------------------------------------------------------


def test_create_get_list_drop(db: keeldb.Database) -> None:
    a = db.create_collection("a", dim=4)
    b = db.create_collection("b", dim=8, metric="l2", workspace="team-1", m=8, ef_search=20)
    assert db.get_collection("a") is a
    assert db.get_collection("b", workspace="team-1") is b
    infos = db.list_collections()
    assert [(i.workspace, i.name, i.dim, i.metric) for i in infos] == [
        ("default", "a", 4, "cosine"),
        ("team-1", "b", 8, "l2"),
    ]
    assert [i.name for i in db.list_collections(workspace="team-1")] == ["b"]
    assert db.list_workspaces() == ["default", "team-1"]
    a.upsert(["x"], vecs(1))
    directory = a.directory
    db.drop_collection("a")
    assert not os.path.exists(directory)
    with pytest.raises(CollectionNotFoundError):
        db.get_collection("a")
    with pytest.raises(ClosedError):
        a.count()
    with pytest.raises(CollectionNotFoundError):
        db.drop_collection("a")


def test_create_existing(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    with pytest.raises(AlreadyExistsError):
        db.create_collection("c", dim=4)
    assert db.create_collection("c", dim=4, exist_ok=True) is col
    with pytest.raises(AlreadyExistsError):
        db.create_collection("c", dim=5, exist_ok=True)


@pytest.mark.parametrize("name", ["", ".", "..", "-x", "a/b", "a b", "x" * 129, "é", None, 3])
def test_bad_names_rejected(db: keeldb.Database, name: object) -> None:
    with pytest.raises(InvalidArgumentError):
        db.create_collection(name, dim=4)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        db.create_collection("ok", dim=4, workspace=name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"dim": 0},
        {"dim": -1},
        {"dim": 2.5},
        {"dim": True},
        {"metric": "dot"},
        {"m": 1},
        {"ef_search": 0},
    ],
)
def test_bad_parameters_rejected(db: keeldb.Database, kwargs: dict[str, object]) -> None:
    args = {"dim": 4, **kwargs}
    with pytest.raises(InvalidArgumentError):
        db.create_collection("c", **args)  # type: ignore[arg-type]


def test_survives_reopen(db_path: str) -> None:
    with keeldb.open(db_path) as db:
        col = db.create_collection("c", dim=4, metric="ip", workspace="w", m=12, ef_construction=40)
        col.upsert(["a", "b"], vecs(2), [{"k": 1}, None])
    with keeldb.open(db_path) as db:
        col = db.get_collection("c", workspace="w")
        info = col.info()
        assert (info.dim, info.metric, info.m, info.ef_construction, info.count) == (
            4,
            "ip",
            12,
            40,
            2,
        )
        recs = col.get(["a", "b"])
        assert recs[0] is not None and recs[0].metadata == {"k": 1}
        assert recs[1] is not None and recs[1].metadata == {}


def _try_open(path: str, q: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        keeldb.open(path)
        q.put("opened")
    except DatabaseLockedError:
        q.put("locked")


def test_second_process_gets_locked_error(db: keeldb.Database, db_path: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_try_open, args=(db_path, q))
    p.start()
    p.join(60)
    assert q.get(timeout=5) == "locked"
    with pytest.raises(DatabaseLockedError):
        keeldb.open(db_path)  # a second Database in the same process too


def test_closed_database_and_collection(db_path: str) -> None:
    db = keeldb.open(db_path)
    col = db.create_collection("c", dim=4)
    db.close()
    db.close()  # idempotent
    with pytest.raises(ClosedError):
        col.upsert(["a"], vecs(1))
    with pytest.raises(ClosedError):
        db.get_collection("c")
    with keeldb.open(db_path):  # the lock was released
        pass


def test_unknown_option_and_durability() -> None:
    with pytest.raises(InvalidArgumentError):
        keeldb.open("/tmp/never", durability="sometimes")
    with pytest.raises(InvalidArgumentError):
        keeldb.open("/tmp/never", no_such_option=1)


# --- records ----------------------------------------------------------------------------------


def test_upsert_replaces_and_metadata_rules(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4, metric="l2")
    v = vecs(3)
    col.upsert(["a", "b", "c"], v, [{"x": 1}, {"y": 2}, None])
    assert col.count() == 3
    v2 = vecs(3, seed=1)
    col.upsert(["a", "b", "c"], v2, [None, {}, {"z": 3}])
    assert col.count() == 3
    a, b, c = col.get(["a", "b", "c"])
    assert a is not None and a.metadata == {"x": 1}  # None keeps
    assert b is not None and b.metadata == {}  # {} clears
    assert c is not None and c.metadata == {"z": 3}
    np.testing.assert_array_equal(a.vector, v2[0])


def test_get_returns_copies(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4, metric="l2")
    meta = {"tags": ["x"]}
    col.upsert(["a"], vecs(1), [meta])
    meta["tags"].append("mutated")
    rec = col.get(["a"])[0]
    assert rec is not None and rec.metadata == {"tags": ["x"]}
    rec.vector[:] = 0
    rec.metadata["tags"].append("y")
    again = col.get(["a"])[0]
    assert again is not None and again.metadata == {"tags": ["x"]}
    np.testing.assert_array_equal(again.vector, vecs(1)[0])


def test_cosine_vectors_are_normalised(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=2)
    col.upsert(["a"], [[3.0, 4.0]])
    rec = col.get(["a"])[0]
    assert rec is not None
    np.testing.assert_allclose(rec.vector, [0.6, 0.8], rtol=1e-6)


def test_delete_counts_existing(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a", "b"], vecs(2))
    assert col.delete(["a", "zzz", "a"]) == 1
    assert col.delete(["a"]) == 0
    assert col.get(["a", "b"])[0] is None
    assert col.count() == 1
    with pytest.raises(InvalidArgumentError):
        col.delete()
    with pytest.raises(InvalidArgumentError):
        col.delete(["b"], filter={"x": 1})


@pytest.mark.parametrize(
    ("ids", "vectors", "metadata", "exc", "fragment"),
    [
        (["a", ""], vecs(2), None, InvalidArgumentError, "ids[1]"),
        (["a", 5], vecs(2), None, InvalidArgumentError, "ids[1]"),
        (["a", "x" * 513], vecs(2), None, InvalidArgumentError, "ids[1]"),
        (["a", "é" * 257], vecs(2), None, InvalidArgumentError, "ids[1]"),
        (["a", "a"], vecs(2), None, InvalidArgumentError, "ids[1]"),
        ("ab", vecs(2), None, InvalidArgumentError, "list"),
        (["a", "b"], vecs(2, dim=5), None, DimensionMismatchError, "dimension"),
        (["a", "b"], vecs(3), None, InvalidArgumentError, "disagree"),
        (
            ["a", "b"],
            np.array([[1, 2, 3, np.nan], [1, 1, 1, 1]]),
            None,
            InvalidArgumentError,
            "vectors[0]",
        ),
        (
            ["a", "b"],
            np.array([[1, 1, 1, 1], [np.inf, 1, 1, 1]]),
            None,
            InvalidArgumentError,
            "vectors[1]",
        ),
        (
            ["a", "b"],
            np.array([[1, 1, 1, 1], [0, 0, 0, 0]]),
            None,
            InvalidArgumentError,
            "zero vector",
        ),
        (["a", "b"], [["x"] * 4] * 2, None, InvalidArgumentError, "numeric"),
        (["a", "b"], vecs(2), [{"k": 1}], InvalidArgumentError, "disagree"),
        (["a", "b"], vecs(2), [{"k": 1}, "str"], InvalidArgumentError, "metadata[1]"),
        (["a", "b"], vecs(2), [{"k": 1}, {1: "int key"}], InvalidArgumentError, "metadata[1]"),
        (["a", "b"], vecs(2), [{"k": float("nan")}, {}], InvalidArgumentError, "metadata[0]"),
        (["a", "b"], vecs(2), [{"k": object()}, {}], InvalidArgumentError, "metadata[0]"),
        (["a", "b"], vecs(2), [{"k": (1, 2)}, {}], InvalidArgumentError, "metadata[0]"),
        (["a", "b"], vecs(2), {"k": 1}, InvalidArgumentError, "list"),
    ],
)
def test_bad_batches_change_nothing(
    db: keeldb.Database, ids: object, vectors: object, metadata: object, exc: type, fragment: str
) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a"], vecs(1, seed=9), [{"orig": True}])
    with pytest.raises(exc) as info:
        col.upsert(ids, vectors, metadata)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert col.count() == 1
    rec = col.get(["a"])[0]
    assert rec is not None and rec.metadata == {"orig": True}
    assert col.get(["b"]) == [None]


@pytest.mark.parametrize("k", [0, -1, 1.5, True, None])
def test_bad_k(db: keeldb.Database, k: object) -> None:
    col = db.create_collection("c", dim=4)
    with pytest.raises(InvalidArgumentError):
        col.search(vecs(1)[0], k=k)  # type: ignore[arg-type]


def test_bad_query(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["a"], vecs(1))
    with pytest.raises(DimensionMismatchError):
        col.search([1.0, 2.0, 3.0])
    with pytest.raises(InvalidArgumentError):
        col.search([0.0, 0.0, 0.0, 0.0])
    with pytest.raises(InvalidArgumentError):
        col.search([[1.0] * 4, [2.0] * 4])
    with pytest.raises(InvalidArgumentError):
        col.search_batch([1.0] * 4)


def test_fewer_hits_only_when_fewer_records(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    assert col.search(vecs(1)[0], k=5) == []
    col.upsert(["a", "b", "c"], vecs(3))
    assert len(col.search(vecs(1)[0], k=5)) == 3
    col.delete(["b"])
    assert {h.id for h in col.search(vecs(1)[0], k=5)} == {"a", "c"}
    assert col.search_batch(np.zeros((0, 4)), k=3) == []


# --- transactions ------------------------------------------------------------------------------


def test_transaction_commits_all(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["old"], vecs(1))
    with col.transaction() as tx:
        tx.upsert(["a", "b"], vecs(2), [{"n": 1}, {"n": 2}])
        tx.delete(["old"])
        tx.upsert(["a"], vecs(1, seed=3), [None])
        assert col.count() == 1  # nothing visible before commit
    assert col.count() == 2
    a = col.get(["a"])[0]
    assert a is not None and a.metadata == {"n": 1}


def test_transaction_rolls_back_on_exception(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    col.upsert(["keep"], vecs(1), [{"v": 1}])
    with pytest.raises(RuntimeError), col.transaction() as tx:
        tx.upsert(["a"], vecs(1))
        tx.delete(["keep"])
        raise RuntimeError("boom")
    assert col.count() == 1
    assert col.get(["a"]) == [None]
    with pytest.raises(InvalidArgumentError), col.transaction() as tx:
        tx.upsert(["b"], vecs(1))
        tx.upsert(["c"], vecs(1, dim=3))
    assert col.get(["b", "c"]) == [None, None]


def test_transaction_cannot_be_reused(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    tx = col.transaction()
    tx.upsert(["a"], vecs(1))
    tx.commit()
    with pytest.raises(ClosedError):
        tx.upsert(["b"], vecs(1))


# --- callbacks and stats ------------------------------------------------------------------------


def test_callbacks_receive_stats(db: keeldb.Database) -> None:
    col = db.create_collection("c", dim=4)
    inserts: list[keeldb.InsertStats] = []
    searches: list[keeldb.SearchStats] = []
    col.on_insert(inserts.append)
    col.on_search(searches.append)
    col.upsert(["a", "b"], vecs(2))
    col.upsert(["a"], vecs(1))
    col.delete(["b"])
    assert [(s.upserted, s.replaced, s.deleted) for s in inserts] == [
        (2, 0, 0),
        (1, 1, 0),
        (0, 0, 1),
    ]
    assert all(s.latency_s > 0 and s.wal_bytes > 0 for s in inserts)
    col.search_batch(vecs(3), k=1)
    (s,) = searches
    assert (
        s.queries == 3 and s.k == 1 and s.plans == {"mem": "exact"} and s.distance_computations > 0
    )


def test_stats_shape(db_path: str) -> None:
    with keeldb.open(db_path, memtable_rows=100, hnsw_min_rows=150) as db:
        col = db.create_collection("c", dim=8)
        col.upsert([str(i) for i in range(400)], vecs(400, dim=8))
        col.delete(["1", "2"])
        col.compact()
        st = col.stats()
        assert st.live_count == 398 and st.deleted_count == 0
        assert st.index_type == "hnsw"
        (seg,) = [s for s in st.segments if s.kind == "hnsw"]
        assert seg.rows == 398 and seg.disk_bytes > 398 * 8 * 4
        assert sum(st.hnsw_levels.values()) == 398
        assert 1 < st.hnsw_avg_edges <= 32
        assert st.memory_bytes > 0 and st.disk_bytes > 0
