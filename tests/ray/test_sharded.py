"""A sharded collection answers exactly like one embedded collection holding the same
rows: search (exact: identical ids and distances), search_batch, count and scan, with and
without filters; bad input gets the embedded engine's errors, in the caller."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

import keeldb
from keeldb.ray import (
    CrossShardTransactionError,
    PartialCount,
    PartialHits,
    ShardCountMismatchError,
    ShardedDatabase,
)

FILTERS: list[Any] = [
    None,
    {"year": {"$gte": 2021}},
    {"$or": [{"year": 2019}, {"rank": {"$exists": True}}]},
    {"name": {"$lt": "c"}},
    {"year": 1800},  # matches nothing
]


@pytest.fixture(scope="module")
def rows(sample_module: dict[str, Any]) -> dict[str, Any]:
    n = len(sample_module["vectors"])
    ids = [f"pkg-{i:05d}" for i in range(n)]
    return {"ids": ids, **sample_module}


@pytest.fixture(scope="module")
def sample_module() -> dict[str, Any]:
    import gzip
    import json

    data = Path(__file__).resolve().parents[2] / "examples" / "data"
    z = np.load(data / "pypi_sample.npz")
    with gzip.open(data / "pypi_sample_meta.jsonl.gz", "rt") as f:
        meta = [json.loads(line) for line in f]
    return {
        "vectors": z["vectors"].astype(np.float32),
        "meta": meta,
        "queries": z["queries"].astype(np.float32),
    }


@pytest.fixture(scope="module")
def pair(
    local_ray: str, rows: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, keeldb.Collection]]:
    """(sharded collection over 3 shards, embedded collection), same rows, same order."""
    base = tmp_path_factory.mktemp("pair")
    sdb = ShardedDatabase.open(base / "sharded", shards=3, unavailable_timeout_s=20)
    db = keeldb.open(base / "embedded")
    try:
        sharded = sdb.create_collection("docs", dim=384)
        embedded = db.create_collection("docs", dim=384)
        for start in range(0, len(rows["ids"]), 700):
            part = slice(start, start + 700)
            for col in (sharded, embedded):
                col.upsert(rows["ids"][part], rows["vectors"][part], rows["meta"][part])
        yield sharded, embedded
    finally:
        sdb.close()
        db.close()


def _listening_sockets() -> dict[int, str]:
    """inode -> local address of every TCP socket in LISTEN state (IPv4 and IPv6)."""
    out: dict[int, str] = {}
    for name, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        with open(name) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], int(fields[9])
                if state != "0A":
                    continue
                addr_hex = local.split(":")[0]
                assert len(addr_hex) == width
                # /proc prints each 32-bit word in host (little-endian) order.
                raw = b"".join(bytes.fromhex(addr_hex[i : i + 8])[::-1] for i in range(0, width, 8))
                out[inode] = raw.hex()
    return out


def _is_loopback(raw_hex: str) -> bool:
    raw = bytes.fromhex(raw_hex)
    if len(raw) == 4:
        return raw[0] == 127
    if raw == bytes(15) + b"\x01":  # ::1
        return True
    return raw[:12] == bytes(10) + b"\xff\xff" and raw[12] == 127  # ::ffff:127.x.x.x


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def test_ray_listens_on_loopback_only(pair: tuple[Any, keeldb.Collection]) -> None:
    sdb = pair[0]._sdb
    # Ray's processes: this driver and everything it started (GCS, raylet, agents,
    # the shard workers).
    pids = _descendants(os.getpid())
    assert {s.pid for s in sdb.shards()} <= pids
    listening = _listening_sockets()
    ours = {ino: listening[ino] for pid in pids for ino in _socket_inodes(pid) if ino in listening}
    assert len(ours) >= 4, "found too few Ray listeners to judge"
    outside = {ino: addr for ino, addr in ours.items() if not _is_loopback(addr)}
    assert outside == {}
    assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"


def _pairs(hits: list[Any]) -> list[tuple[str, float]]:
    return [(h.id, h.distance) for h in hits]


def test_exact_search_is_identical(pair: tuple[Any, keeldb.Collection], rows: dict) -> None:
    sharded, embedded = pair
    for flt in FILTERS:
        for q in rows["queries"][:15]:
            got = sharded.search(q, 10, exact=True, filter=flt)
            want = embedded.search(q, 10, exact=True, filter=flt)
            assert _pairs(got) == _pairs(want)
            assert [h.metadata for h in got] == [h.metadata for h in want]


def test_exact_search_batch_is_identical(pair: tuple[Any, keeldb.Collection], rows: dict) -> None:
    sharded, embedded = pair
    queries = rows["queries"][:40]
    for flt in FILTERS:
        got = sharded.search_batch(queries, 7, exact=True, filter=flt)
        want = embedded.search_batch(queries, 7, exact=True, filter=flt)
        assert [_pairs(h) for h in got] == [_pairs(h) for h in want]
    got = sharded.search_batch(queries, 5, exact=True, with_metadata=False)
    assert all(h.metadata is None for hits in got for h in hits)


def test_large_query_batches_go_through_the_object_store_once(
    pair: tuple[Any, keeldb.Collection], rows: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    import keeldb.ray.collection as collection_mod

    sharded, embedded = pair
    puts: list[int] = []
    real_put = collection_mod.ray.put

    def counting_put(value: Any) -> Any:
        puts.append(np.asarray(value).nbytes)
        return real_put(value)

    monkeypatch.setattr(collection_mod.ray, "put", counting_put)
    queries = np.tile(rows["queries"], (2, 1))[:150]  # 150 x 384 float32 = 230 KB
    got = sharded.search_batch(queries, 3, exact=True)
    assert puts == [queries.nbytes]
    want = embedded.search_batch(queries, 3, exact=True)
    assert [_pairs(h) for h in got] == [_pairs(h) for h in want]
    sharded.search(queries[0], 3)
    assert len(puts) == 1  # a small query is sent inline


def test_approximate_search_keeps_recall(pair: tuple[Any, keeldb.Collection], rows: dict) -> None:
    sharded, _ = pair
    queries = rows["queries"][:50]
    got = sharded.search_batch(queries, 10)
    exact = sharded.search_batch(queries, 10, exact=True)
    found = sum(len({h.id for h in g} & {h.id for h in e}) for g, e in zip(got, exact, strict=True))
    assert found / (10 * len(queries)) >= 0.95


def test_count_is_identical(pair: tuple[Any, keeldb.Collection]) -> None:
    sharded, embedded = pair
    for flt in FILTERS:
        assert sharded.count(flt) == embedded.count(flt)
    partial = sharded.count(allow_partial=True)
    assert isinstance(partial, PartialCount) and not partial.partial
    assert partial == embedded.count()


def _scan_all(col: Any, flt: Any, limit: int) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        page = col.scan(flt, limit, cursor)
        assert len(page.records) <= limit
        out.extend(page.records)
        cursor = page.next_cursor
        if cursor is None:
            return out


def test_scan_is_identical(pair: tuple[Any, keeldb.Collection]) -> None:
    sharded, embedded = pair
    for flt in FILTERS:
        for limit in (1000, 97):
            got = _scan_all(sharded, flt, limit)
            want = _scan_all(embedded, flt, limit)
            assert [r.id for r in got] == [r.id for r in want]
            assert [r.metadata for r in got] == [r.metadata for r in want]
            if got:
                assert np.array_equal(
                    np.stack([r.vector for r in got]), np.stack([r.vector for r in want])
                )
    first = sharded.scan(None, 10)
    assert first.records[0].id == "pkg-00000"
    assert first.next_cursor == first.records[-1].id


def test_info_stats_and_shards(pair: tuple[Any, keeldb.Collection]) -> None:
    sharded, embedded = pair
    info = sharded.info()
    assert (info.dim, info.metric, info.count) == (384, "cosine", embedded.count())
    assert sharded.stats().live_count == embedded.count()
    shards = sharded._sdb.shards()
    assert [s.index for s in shards] == [0, 1, 2]
    assert all(s.alive and s.pid and s.rows for s in shards)
    assert sum(s.rows for s in shards) == embedded.count()
    assert len({s.directory for s in shards}) == 3
    assert PartialHits([1], (2,)).partial


def test_writes_match_embedded(
    pair: tuple[Any, keeldb.Collection], rows: dict, tmp_path: Path
) -> None:
    sdb = pair[0]._sdb
    with keeldb.open(tmp_path / "e") as db:
        sharded = sdb.create_collection("w", dim=384, metric="l2")
        embedded = db.create_collection("w", dim=384, metric="l2")
        ids, vecs, meta = rows["ids"][:400], rows["vectors"][:400], rows["meta"][:400]
        for col in (sharded, embedded):
            col.upsert(ids, vecs, meta)
            # Replace vectors (with ones not stored elsewhere: no distance ties), keep metadata.
            col.upsert(ids[:50], rows["vectors"][2000:2050], None)
        probe = [ids[3], "absent", ids[70], ids[3]]
        got, want = sharded.get(probe), embedded.get(probe)
        assert [None if r is None else (r.id, r.metadata) for r in got] == [
            None if r is None else (r.id, r.metadata) for r in want
        ]
        assert all(
            np.array_equal(a.vector, b.vector)
            for a, b in zip(got, want, strict=True)
            if a is not None and b is not None
        )
        gone = [*ids[:30], "absent", ids[0]]
        assert sharded.delete(ids=gone) == embedded.delete(ids=gone) == 30
        flt = {"year": {"$lt": 2018}}
        assert sharded.delete(filter=flt) == embedded.delete(filter=flt)
        assert sharded.count() == embedded.count()
        assert sharded.delete(ids=[]) == embedded.delete(ids=[]) == 0
        report = sharded.compact()
        assert report.segments_after >= 1
        q = rows["queries"][0]
        want = _pairs(embedded.search(q, 10, exact=True))
        assert _pairs(sharded.search(q, 10, exact=True)) == want
        listed = {i.name: i.count for i in sdb.list_collections()}
        assert listed["w"] == embedded.count()
        assert sdb.list_workspaces() == ["default"]
        sdb.drop_collection("w")
        assert [i.name for i in sdb.list_collections()] == ["docs"]
        with pytest.raises(keeldb.CollectionNotFoundError):
            sdb.get_collection("w")
        with pytest.raises(keeldb.CollectionNotFoundError):
            sdb.drop_collection("w")


def _bad_calls(rows: dict) -> list[tuple[str, Callable[[Any], Any]]]:
    ids = rows["ids"][:20]
    vecs = rows["vectors"][:20].copy()
    nan = vecs.copy()
    nan[13, 5] = np.nan
    meta = list(rows["meta"][:20])
    bad_meta = [*meta[:17], {"x": {1, 2}}, *meta[18:]]
    return [
        ("nan vector", lambda c: c.upsert(ids, nan, meta)),
        ("duplicate id", lambda c: c.upsert([*ids[:19], ids[4]], vecs, meta)),
        ("non-str id", lambda c: c.upsert([*ids[:19], 7], vecs, meta)),
        ("empty id", lambda c: c.upsert([*ids[:11], "", *ids[12:]], vecs, meta)),
        ("ids not a list", lambda c: c.upsert("abc", vecs[:3], None)),
        ("wrong dim", lambda c: c.upsert(ids, vecs[:, :100], meta)),
        ("too few vectors", lambda c: c.upsert(ids, vecs[:19], meta)),
        ("metadata not json", lambda c: c.upsert(ids, vecs, bad_meta)),
        ("metadata length", lambda c: c.upsert(ids, vecs, meta[:3])),
        ("metadata not list", lambda c: c.upsert(ids, vecs, {"a": 1})),
        ("zero vector", lambda c: c.upsert(ids[:2], np.zeros((2, 384)), None)),
        ("search dim", lambda c: c.search(np.ones(10), 3)),
        ("search k", lambda c: c.search(vecs[0], 0)),
        ("search ef+exact", lambda c: c.search(vecs[0], 3, ef=10, exact=True)),
        ("bad filter", lambda c: c.search(vecs[0], 3, filter={"year": {"$bogus": 1}})),
        ("batch shape", lambda c: c.search_batch(vecs[0], 3)),
        ("count filter", lambda c: c.count({"$or": []})),
        ("scan limit", lambda c: c.scan(None, 0)),
        ("scan cursor", lambda c: c.scan(None, 10, 5)),
        ("delete both", lambda c: c.delete(ids=ids, filter={"year": 1})),
        ("delete none", lambda c: c.delete()),
        ("delete bad id", lambda c: c.delete(ids=[*ids[:5], 3])),
        ("get bad id", lambda c: c.get([ids[0], None])),
        ("get not list", lambda c: c.get("abc")),
    ]


def test_bad_input_raises_the_embedded_error(
    pair: tuple[Any, keeldb.Collection], rows: dict
) -> None:
    sharded, embedded = pair
    before = sharded.count()
    for what, call in _bad_calls(rows):
        with pytest.raises(keeldb.KeelError) as want:
            call(embedded)
        with pytest.raises(keeldb.KeelError) as got:
            call(sharded)
        assert type(got.value) is type(want.value), what
        assert str(got.value) == str(want.value), what
    assert sharded.count() == before == embedded.count()  # nothing applied anywhere


def test_transaction_is_refused(pair: tuple[Any, keeldb.Collection]) -> None:
    sharded, _ = pair
    with pytest.raises(CrossShardTransactionError, match="across shards"):
        sharded.transaction()


def test_reopen_with_another_shard_count_is_refused(local_ray: str, tmp_path: Path) -> None:
    path = tmp_path / "fixed"
    with ShardedDatabase.open(path, shards=2) as sdb:
        sdb.create_collection("c", dim=4).upsert(["a", "b", "c"], np.eye(3, 4), None)
    with pytest.raises(ShardCountMismatchError, match="opened as shard 0 of 1"):
        ShardedDatabase.open(path, shards=1)
    with ShardedDatabase.open(path, shards=2) as sdb:
        assert sdb.get_collection("c").count() == 3
    with pytest.raises(keeldb.InvalidArgumentError):
        ShardedDatabase.open(path, shards=0)


def test_create_collection_errors_are_the_engines(pair: tuple[Any, keeldb.Collection]) -> None:
    sdb = pair[0]._sdb
    with pytest.raises(keeldb.AlreadyExistsError):
        sdb.create_collection("docs", dim=384)
    assert sdb.create_collection("docs", dim=384, exist_ok=True).name == "docs"
    with pytest.raises(keeldb.InvalidArgumentError, match="invalid collection name"):
        sdb.create_collection("no/slash", dim=4)


def test_a_slow_shard_is_not_mistaken_for_a_dead_one(
    pair: tuple[Any, keeldb.Collection], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regression: shards are awaited one after another, and the unavailability clock
    # used to start with the call, so a live shard awaited after a slow one was
    # declared down at once (found by bench/ray_bench.py during a 2-shard compaction).
    import time

    shard_set = pair[0]._sdb.shard_set
    # 2 s: four liveness probes (one per 0.5 s) fit in it, so a shard is never declared
    # down for one probe answered late on a busy machine.
    monkeypatch.setattr(shard_set, "unavailable_timeout_s", 2.0)

    @ray.remote(num_cpus=0)
    def slow(seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    # Start the worker processes first: their start is a CPU burst on a small machine.
    ray.get([slow.remote(0.0) for _ in range(2)])

    def make(actor: Any, i: int, attempt: int) -> Any:
        # Slow answers from live shards: each shard still answers its liveness probe.
        # Shard 0 takes longer than the limit; shard 1, awaited after it, longer than
        # shard 0 plus the limit.
        return slow.remote([3.0, 6.0][i]) if i < 2 else actor.ping.remote()

    results, missing = shard_set.call(range(3), make)
    assert (results[0], results[1], missing) == (3.0, 6.0, [])
