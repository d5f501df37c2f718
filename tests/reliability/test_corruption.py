"""Corruption: flip, zero or truncate bytes in every kind of file.

Opening and using the collection must then give a CorruptionError naming the damaged file,
or a rebuild from intact data (an HNSW graph is rebuilt from the segment's vectors) with
exactly the right contents -- never a crash, a hang or a wrong result -- and
``keeldb check`` must report the same damage.

Large payloads (vectors and the HNSW copy of them) are verified at open only with
``verify=True``; by default the background scrubber verifies them shortly after open, and
merges verify their inputs. Both are tested here.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_util import DIM, Model, Workload, read_all, write_batch

import keeldb
from keeldb.errors import CorruptionError, KeelError
from keeldb.storage.faults import FaultyFileSystem

OPTS = {"memtable_rows": 50, "hnsw_min_rows": 100, "background": False}
KINDS = ["wal", "manifest", "vec", "ids", "meta", "cols", "hnsw", "del"]
DAMAGE = ["flip", "zero", "truncate"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Model]:
    """A collection with an HNSW segment, a flat segment, tombstones, and WAL records past
    the checkpoint (left by a crash, so they are replayed on open)."""
    root = tmp_path_factory.mktemp("pristine")
    model = Model()
    wl = Workload(21, id_space=600)
    db = keeldb.open(root / "db", **OPTS)
    col = db.create_collection("c", DIM, "l2")
    for _ in range(8):
        b = [("upsert", wl.upsert_args(25))]
        write_batch(col, b)
        model.apply(b)
    col.compact()  # HNSW segment
    for _ in range(3):
        b = [("upsert", wl.upsert_args(20))]
        write_batch(col, b)
        model.apply(b)
    b = [("delete", sorted(model.records)[:15])]
    write_batch(col, b)
    model.apply(b)
    col.compact()  # vacuum / flat segment, tombstones persisted
    b = [("delete", sorted(model.records)[-5:])]
    write_batch(col, b)
    model.apply(b)
    for _ in range(3):  # WAL records past the checkpoint
        b = wl.batch()
        write_batch(col, b)
        model.apply(b)
    col.versions.checkpoint()  # tombstones file on disk
    FaultyFileSystem.abandon(db)
    names = os.listdir(root / "db" / "workspaces" / "default" / "c")
    for kind in KINDS:
        assert _files(names, kind), f"the fixture has no {kind} file: {names}"
    return root, model


def _files(names: list[str], kind: str) -> list[str]:
    if kind == "wal":
        return sorted(n for n in names if n.startswith("wal-"))
    if kind == "manifest":
        return ["MANIFEST"] if "MANIFEST" in names else []
    if kind == "del":
        return sorted(n for n in names if ".del-" in n)
    return sorted(n for n in names if n.startswith("seg-") and n.endswith("." + kind))


def _damage(path: Path, how: str, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        cut = rng.randrange(0, len(data))
        path.write_bytes(bytes(data[:cut]))
        return f"truncated to {cut}"
    pos = rng.randrange(0, len(data))
    if how == "flip":
        data[pos] ^= 1 << rng.randrange(8)
    else:
        end = min(len(data), pos + rng.randint(1, 64))
        if all(b == 0 for b in data[pos:end]):
            data[pos:end] = b"\xff" * (end - pos)  # zeroing zeros would change nothing
        else:
            data[pos:end] = bytes(end - pos)
    path.write_bytes(bytes(data))
    return f"{how} at {pos}"


def _use(dbdir: Path, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open, scrub, read everything, search; returns (records, recovery report)."""
    with keeldb.open(dbdir, **dict(OPTS, **options)) as db:
        col = db.get_collection("c")
        col._maintainer.scrub()  # type: ignore[union-attr]  # what the worker does after open
        records = read_all(col)
        assert col.count() == len(records)
        for id_ in sorted(records)[:5]:
            col.search(records[id_][0], k=5, ef=100)
        col.search(np.ones(DIM, np.float32), k=5, filter={"tag": "x"})
        return records, col.recovery_report


def _equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return set(a) == set(b) and all(
        np.array_equal(a[k][0], b[k][0]) and a[k][1] == b[k][1] for k in a
    )


def _check_one(root: Path, model: Model, work: Path, kind: str, how: str, seed: int) -> str:
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(root, work)
    cdir = work / "db" / "workspaces" / "default" / "c"
    rng = random.Random(seed)
    name = rng.choice(_files(os.listdir(cdir), kind))
    what = _damage(cdir / name, how, rng)
    context = f"{kind}/{name}: {what}"
    report = keeldb.check(work / "db")
    flagged = [m for m in report.problems + report.warnings if name in m]
    try:
        records, recovery = _use(work / "db")
    except CorruptionError as exc:
        assert name in str(exc), f"{context}: CorruptionError does not name the file: {exc}"
        assert flagged and report.problems, f"{context}: open refused, check silent: {report}"
        return "refused"
    except KeelError as exc:
        raise AssertionError(
            f"{context}: {type(exc).__name__} instead of CorruptionError: {exc}"
        ) from exc
    assert flagged, f"{context}: check does not report the damage: {report}"
    if _equal(records, model.records):
        return "repaired or harmless"
    # The only damage that may lose data silently is a torn-looking WAL tail: the last
    # record of the last file cannot be told apart from a write cut by a crash. It is
    # dropped, reported, and flagged by check.
    assert kind == "wal" and recovery.get("torn_tail"), f"{context}: WRONG RESULT after damage"
    assert name in recovery["torn_tail"]["file"] and flagged, context
    return "torn tail dropped"


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_damage_is_refused_or_repaired(
    pristine: tuple[Path, Model], fast_tmp: Path, kind: str, how: str
) -> None:
    root, model = pristine
    outcomes: dict[str, int] = {}
    for seed in range(6):
        out = _check_one(root, model, fast_tmp / "work", kind, how, seed)
        outcomes[out] = outcomes.get(out, 0) + 1
    print(f"\n[corruption] {kind}/{how}: {outcomes}")


@pytest.mark.parametrize("kind", ["vec", "hnsw"])
def test_payload_damage_is_caught_at_open_with_verify(
    pristine: tuple[Path, Model], fast_tmp: Path, kind: str
) -> None:
    root, _ = pristine
    work = fast_tmp / "work"
    shutil.copytree(root, work)
    cdir = work / "db" / "workspaces" / "default" / "c"
    name = _files(os.listdir(cdir), kind)[0]
    data = bytearray((cdir / name).read_bytes())
    data[len(data) // 2] ^= 0x10  # inside the vectors
    (cdir / name).write_bytes(bytes(data))
    try:
        with keeldb.open(work / "db", verify=True, **OPTS) as db:
            db.get_collection("c")
    except CorruptionError as exc:
        assert name in str(exc)
    else:
        # Only an HNSW file may be repaired (rebuilt from the verified vectors).
        assert kind == "hnsw"
        with keeldb.open(work / "db", **OPTS) as db:
            assert db.get_collection("c").recovery_report["rebuilt_indexes"] == []


def test_merge_does_not_launder_damaged_vectors(
    pristine: tuple[Path, Model], fast_tmp: Path
) -> None:
    """A merge copies vectors into a new segment with a fresh checksum: it must verify its
    inputs first, or damage found nowhere yet becomes permanent and silent."""
    root, _ = pristine
    work = fast_tmp / "work"
    shutil.copytree(root, work)
    cdir = work / "db" / "workspaces" / "default" / "c"
    name = _files(os.listdir(cdir), "vec")[-1]
    data = bytearray((cdir / name).read_bytes())
    data[-3] ^= 0x40
    (cdir / name).write_bytes(bytes(data))
    with keeldb.open(work / "db", **OPTS) as db:  # no verify at open, no scrub yet
        with pytest.raises(CorruptionError, match=name):
            db.get_collection("c").compact()
    report = keeldb.check(work / "db")
    assert any(name in p for p in report.problems), report


def _repair_one(root: Path, model: Model, work: Path, kind: str, how: str, seed: int) -> str:
    """Damage one file, run ``keeldb.repair``, and hold the result against the model:
    every record is back exactly, or reported lost (by id, or counted when its id is
    unreadable), or explained by reported WAL damage; nothing else changes."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(root, work)
    cdir = work / "db" / "workspaces" / "default" / "c"
    rng = random.Random(seed)
    name = rng.choice(_files(os.listdir(cdir), kind))
    context = f"{kind}/{name}: {_damage(cdir / name, how, rng)}"
    before = sorted(os.listdir(cdir))
    (report,) = keeldb.repair(work / "db")
    if report.status == "failed":
        assert kind == "manifest", f"{context}: repair failed: {report.problems}"
        assert sorted(os.listdir(cdir)) == before, f"{context}: a failed repair changed files"
        return "failed (configuration lost)"
    assert keeldb.check(work / "db").ok, context
    with keeldb.open(work / "db", **OPTS) as db:
        records = read_all(db.get_collection("c"))
    if report.status == "intact":
        assert _equal(records, model.records) or kind == "wal", context
        return "intact"
    assert report.damaged_copy and os.path.isdir(report.damaged_copy), context
    lost = set(report.lost_ids)
    for id_, (vec, meta, _doc) in model.records.items():
        if id_ in records:
            assert np.array_equal(records[id_][0], vec) or report.wal_damage, context
            assert records[id_][1] == meta or report.wal_damage, context
        else:
            assert id_ in lost or report.lost_unknown or report.wal_damage, (
                f"{context}: {id_} vanished unreported"
            )
    extra = set(records) - set(model.records)
    assert not extra or report.wal_damage, f"{context}: records that should not exist: {extra}"
    assert not lost & set(records), f"{context}: ids reported lost are present"
    return "repaired" if not (lost or report.lost_unknown) else "repaired, some lost"


@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize("kind", KINDS)
def test_repair_recovers_every_intact_record(
    pristine: tuple[Path, Model], fast_tmp: Path, kind: str, how: str
) -> None:
    root, model = pristine
    outcomes: dict[str, int] = {}
    for seed in range(2):
        out = _repair_one(root, model, fast_tmp / "work", kind, how, seed)
        outcomes[out] = outcomes.get(out, 0) + 1
    print(f"\n[repair] {kind}/{how}: {outcomes}")


def test_a_damaged_collection_is_listed_as_damaged_and_the_others_work(
    pristine: tuple[Path, Model], fast_tmp: Path
) -> None:
    root, model = pristine
    work = fast_tmp / "work"
    shutil.copytree(root, work)
    with keeldb.open(work / "db", **OPTS) as db:
        db.create_collection("healthy", DIM, "l2").upsert(["h"], np.ones((1, DIM), np.float32))
    cdir = work / "db" / "workspaces" / "default" / "c"
    name = _files(os.listdir(cdir), "ids")[0]
    _damage(cdir / name, "flip", random.Random(1))
    with keeldb.open(work / "db", **OPTS) as db:
        infos = {i.name: i for i in db.list_collections()}
        assert infos["c"].damaged and name in infos["c"].damaged
        assert infos["c"].count == -1 and infos["c"].index_type == "damaged"
        assert infos["c"].dim == DIM and infos["c"].metric == "l2"
        assert infos["healthy"].damaged is None and infos["healthy"].count == 1
        assert db.get_collection("healthy").get(["h"])[0] is not None
        with pytest.raises(CorruptionError):
            db.get_collection("c")
    (report,) = keeldb.repair(work / "db", "c")
    assert report.status == "repaired" and report.lost_unknown > 0
    with keeldb.open(work / "db", **OPTS) as db:
        assert all(i.damaged is None for i in db.list_collections())
