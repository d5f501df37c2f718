"""The single-file (tar) form of a backup: ``db.backup("x.tar")`` and
``keeldb.restore("x.tar", dest)``, including hostile and incomplete archives."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

import keeldb
from keeldb.errors import AlreadyExistsError, CorruptionError, InvalidArgumentError, NotFoundError
from keeldb.storage.archive import COMPLETE_MARKER, pack

SMALL = {"memtable_rows": 200, "hnsw_min_rows": 300}


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _contents(path: Path) -> dict[str, dict[str, object]]:
    out: dict[str, dict[str, object]] = {}
    with keeldb.open(path, **SMALL) as db:
        for info in db.list_collections():
            col = db.get_collection(info.name, workspace=info.workspace)
            page = col.scan(limit=10_000)
            out[f"{info.workspace}/{info.name}"] = {
                r.id: (np.round(r.vector, 5).tolist(), r.metadata) for r in page.records
            }
    return out


def _make_db(path: Path) -> None:
    with keeldb.open(path, **SMALL) as db:
        a = db.create_collection("a", dim=8, metric="l2")
        a.upsert([f"a{i}" for i in range(400)], _vectors(400), [{"i": i} for i in range(400)])
        a.compact()
        a.delete(["a1", "a2"])
        a.upsert(["wal-only"], _vectors(1, seed=4))
        db.create_collection("b", dim=8, workspace="w").upsert(["x"], _vectors(1, seed=2))


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_tar_backup_and_restore_round_trip(tmp_path: Path) -> None:
    _make_db(tmp_path / "db")
    expected = _contents(tmp_path / "db")
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        report = db.backup(tmp_path / "bk.tar")
    assert report.path == str(tmp_path / "bk.tar")
    assert sorted(report.collections) == ["default/a", "w/b"]
    assert report.files > 0 and report.bytes > 0
    assert tarfile.is_tarfile(tmp_path / "bk.tar")
    with tarfile.open(tmp_path / "bk.tar") as tar:
        names = tar.getnames()
    assert names[-1] == COMPLETE_MARKER and "BACKUP" in names
    restored = keeldb.restore(tmp_path / "bk.tar", tmp_path / "restored")
    assert restored.path == str(tmp_path / "restored")
    assert sorted(restored.collections) == ["default/a", "w/b"]
    assert keeldb.check(tmp_path / "restored").ok
    assert _contents(tmp_path / "restored") == expected
    assert _leftovers(tmp_path) == []  # both temporary directories are gone


def test_tar_backup_with_hard_links_and_into_a_missing_directory(tmp_path: Path) -> None:
    _make_db(tmp_path / "db")
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        db.backup(tmp_path / "bk.tar", hard_links=True)
        with pytest.raises(NotFoundError):
            db.backup(tmp_path / "missing" / "bk.tar")
        with pytest.raises(AlreadyExistsError):
            db.backup(tmp_path / "bk.tar")
        with pytest.raises(InvalidArgumentError):
            db.backup(tmp_path / "db" / "inside.tar")
    assert not (tmp_path / "db" / "inside.tar").exists()
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "db") == []
    keeldb.restore(tmp_path / "bk.tar", tmp_path / "r")
    assert _contents(tmp_path / "r") == _contents(tmp_path / "db")


def test_restore_into_an_existing_destination_is_refused(tmp_path: Path) -> None:
    _make_db(tmp_path / "db")
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        db.backup(tmp_path / "bk.tar")
    (tmp_path / "r").mkdir()
    with pytest.raises(AlreadyExistsError):
        keeldb.restore(tmp_path / "bk.tar", tmp_path / "r")


def _hostile(path: Path, members: list[tarfile.TarInfo], data: dict[str, bytes]) -> Path:
    """A tar of ``members`` (regular ones get ``data[name]``) ending with a marker that
    lists every regular member, so only the hostile member itself is wrong."""
    listed = [
        {
            "path": m.name,
            "size": len(data[m.name]),
            "sha256": hashlib.sha256(data[m.name]).hexdigest(),
        }
        for m in members
        if m.isreg()
    ]
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for m in members:
            if m.isreg():
                m.size = len(data[m.name])
                tar.addfile(m, io.BytesIO(data[m.name]))
            else:
                tar.addfile(m)
        marker = orjson.dumps({"format": 1, "files": listed})
        info = tarfile.TarInfo(COMPLETE_MARKER)
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([_member("/etc/evil")], "absolute"),
        ([_member("../evil")], r"'\.\.'"),
        ([_member("workspaces/../../evil")], r"'\.\.'"),
        ([_member("link", tarfile.SYMTYPE, "/etc/passwd")], "links"),
        ([_member("hard", tarfile.LNKTYPE, "/etc/passwd")], "links"),
        ([_member("dev", tarfile.CHRTYPE)], "devices"),
        ([_member("fifo", tarfile.FIFOTYPE)], "devices"),
    ],
)
def test_hostile_archives_are_refused_by_restore(
    tmp_path: Path, members: list[tarfile.TarInfo], match: str
) -> None:
    data = {m.name: b"x" * 10 for m in members}
    archive = _hostile(tmp_path / "evil.tar", members, data)
    with pytest.raises(InvalidArgumentError, match=match):
        keeldb.restore(archive, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert not (tmp_path.parent / "evil").exists()
    assert _leftovers(tmp_path) == []


def test_an_archive_of_an_interrupted_backup_is_refused(tmp_path: Path) -> None:
    """A directory backup cut short (no BACKUP file), packed: the archive is whole, the
    backup inside is not, and restore says so."""
    _make_db(tmp_path / "db")
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        db.backup(tmp_path / "bk")
    (tmp_path / "bk" / "BACKUP").unlink()
    pack(tmp_path / "bk", tmp_path / "partial.tar")
    with pytest.raises(NotFoundError, match="not a complete KeelDB backup"):
        keeldb.restore(tmp_path / "partial.tar", tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert _leftovers(tmp_path) == []


def test_truncated_and_tampered_archives_are_refused(tmp_path: Path) -> None:
    _make_db(tmp_path / "db")
    with keeldb.open(tmp_path / "db", **SMALL) as db:
        db.backup(tmp_path / "bk.tar")
    whole = (tmp_path / "bk.tar").read_bytes()
    (tmp_path / "cut.tar").write_bytes(whole[: len(whole) // 2])
    with pytest.raises((InvalidArgumentError, CorruptionError)):
        keeldb.restore(tmp_path / "cut.tar", tmp_path / "r")
    # Flip one byte inside the first regular member's data (after its 512-byte header).
    with tarfile.open(tmp_path / "bk.tar") as tar:
        first = next(m for m in tar.getmembers() if m.isreg() and m.size > 0)
    tampered = bytearray(whole)
    tampered[first.offset_data] ^= 0xFF
    (tmp_path / "bad.tar").write_bytes(bytes(tampered))
    with pytest.raises(CorruptionError, match="SHA-256"):
        keeldb.restore(tmp_path / "bad.tar", tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert _leftovers(tmp_path) == []


_SLOW_PACK = textwrap.dedent(
    """
    import sys, time
    import keeldb
    from keeldb.storage import archive

    real = archive._add_file
    count = [0]

    def slow(*args, **kwargs):
        out = real(*args, **kwargs)
        count[0] += 1
        if count[0] == 3:
            open(sys.argv[3], "w").close()  # tell the test: mid-pack now
            time.sleep(60)
        return out

    archive._add_file = slow
    with keeldb.open(sys.argv[1], memtable_rows=200, hnsw_min_rows=300) as db:
        db.backup(sys.argv[2])
    """
)


def test_kill_9_while_packing_leaves_no_archive_and_the_source_intact(tmp_path: Path) -> None:
    _make_db(tmp_path / "db")
    expected = _contents(tmp_path / "db")
    sentinel = tmp_path / "mid-pack"
    target = tmp_path / "bk.tar"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_PACK, str(tmp_path / "db"), str(target), str(sentinel)]
    )
    try:
        deadline = time.monotonic() + 60
        while not sentinel.exists():
            assert proc.poll() is None, "the backup process ended early"
            assert time.monotonic() < deadline, "the backup never started packing"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not target.exists()  # only a whole archive is ever renamed into place
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("bk.tar.tmp-")]
    with pytest.raises(NotFoundError):
        keeldb.restore(target, tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert keeldb.check(tmp_path / "db").ok
    assert _contents(tmp_path / "db") == expected
