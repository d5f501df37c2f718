"""``keeldb backup``, ``restore`` and ``repair``; ``info``/``check``/``compact`` on a
database with a damaged collection; compaction phases drawn by ``compact`` and
``import --index`` (issue 17)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.cli import admin, main, transfer
from keeldb.cli.progress import PhaseProgress

SMALL = {"memtable_rows": 200, "hnsw_min_rows": 300}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def _vectors(n: int, dim: int = 8, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _db(tmp_path: Path, damaged_rows: int = 50) -> str:
    """A database with a healthy collection and ``c``, whose rows sit in one flat segment."""
    db = str(tmp_path / "db")
    with keeldb.open(db, **SMALL) as database:
        database.create_collection("healthy", dim=8).upsert(["h0", "h1"], _vectors(2, seed=1))
        c = database.create_collection("c", dim=8, metric="l2")
        c.upsert([f"c{i:03d}" for i in range(damaged_rows)], _vectors(damaged_rows))
        c.compact()
    return db


def _flip(db: str, collection: str, suffix: str) -> Path:
    cdir = Path(db) / "workspaces" / "default" / collection
    victim = next(p for p in sorted(cdir.iterdir()) if p.name.endswith(suffix))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    return victim


# --- backup and restore ---------------------------------------------------------------------


@pytest.mark.parametrize("dest", ["bk", "bk.tar"])
def test_backup_then_restore(tmp_path: Path, capsys: pytest.CaptureFixture[str], dest: str) -> None:
    db = _db(tmp_path)
    target = str(tmp_path / dest)
    code, out, _ = run(capsys, "backup", db, target)
    assert code == 0
    assert f"written to {target}: 2 collection(s)," in out and " files, " in out
    assert out.rstrip().endswith("s")
    assert Path(target).is_dir() == (dest == "bk")
    code, out, _ = run(capsys, "restore", target, str(tmp_path / "r"))
    assert code == 0 and "every checksum verified" in out
    with keeldb.open(tmp_path / "r") as restored:
        assert restored.get_collection("c").count() == 50
        assert restored.get_collection("healthy").count() == 2
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_backup_with_hard_links(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path)
    assert run(capsys, "backup", db, str(tmp_path / "bk"), "--hard-links")[0] == 0
    assert run(capsys, "restore", str(tmp_path / "bk"), str(tmp_path / "r"))[0] == 0


def test_backup_and_restore_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path)
    code, _, err = run(capsys, "backup", str(tmp_path / "nowhere"), str(tmp_path / "bk"))
    assert code == 1 and "no KeelDB database" in err
    code, _, err = run(capsys, "backup", "http://127.0.0.1:9", str(tmp_path / "bk"))
    assert code == 2 and "local database directory" in err
    code, _, err = run(capsys, "restore", "http://127.0.0.1:9/x", str(tmp_path / "r"))
    assert code == 2 and "local database directory" in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine").write_text("x")
    code, _, err = run(capsys, "backup", db, str(tmp_path / "full"))
    assert code == 1 and "not empty" in err
    code, _, err = run(capsys, "backup", db, str(tmp_path / "missing" / "bk.tar"))
    assert code == 1 and "does not exist" in err
    code, _, err = run(capsys, "restore", str(tmp_path / "nothing"), str(tmp_path / "r"))
    assert code == 1 and "not a complete KeelDB backup" in err
    with keeldb.open(db):
        code, _, err = run(capsys, "backup", db, str(tmp_path / "bk"))
        assert code == 1 and "stop the process" in err
    assert not (tmp_path / "bk").exists()


def test_restore_refuses_a_hostile_archive(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
        marker = b'{"format": 1, "files": [{"path": "../escaped", "size": 1, "sha256": "0"}]}'
        info = tarfile.TarInfo("BACKUP-COMPLETE")
        info.size = len(marker)
        tar.addfile(info, io.BytesIO(marker))
    code, _, err = run(capsys, "restore", str(evil), str(tmp_path / "r"))
    assert code == 1 and "'..' components are refused" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists() and not (tmp_path.parent / "escaped").exists()


# --- a damaged collection: info, check, compact, repair -------------------------------------


def test_info_check_compact_and_repair_with_a_damaged_collection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(tmp_path)
    victim = _flip(db, "c", ".ids")
    code, out, _ = run(capsys, "info", db)
    assert code == 0
    assert "2 collection(s) (1 damaged)" in out
    assert "default/c: DAMAGED: " in out and victim.name in out
    rows = {
        line.split()[1]: line.split() for line in out.splitlines() if line.startswith("default ")
    }
    assert rows["healthy"][4] == "2" and rows["healthy"][6] == "flat"  # listed normally
    assert rows["c"][4:7] == ["-", "-", "DAMAGED"]
    assert f"keeldb repair {db}" in out
    listed = json.loads(run(capsys, "info", db, "--json")[1])["collections"]
    by_name = {c["name"]: c for c in listed}
    assert by_name["c"]["damaged"] and by_name["c"]["count"] == -1
    assert by_name["healthy"]["damaged"] is None and by_name["healthy"]["count"] == 2

    code, out, _ = run(capsys, "check", db)
    assert code == 1 and f"run: keeldb repair {db}" in out

    code, _, err = run(capsys, "backup", db, str(tmp_path / "bk.tar"))
    assert code == 1 and f"repair it first (keeldb repair {db})" in err
    assert not (tmp_path / "bk.tar").exists()
    code, _, err = run(capsys, "backup", db, str(tmp_path / "bk"))
    assert code == 1 and "has no BACKUP file" in err

    code, out, _ = run(capsys, "compact", db)
    assert code == 1
    assert "skipping default/c: DAMAGED" in out and "compacting default/healthy" in out

    code, out, _ = run(capsys, "repair", db)
    assert code == 0
    assert "default/c: repaired, " in out and "default/healthy: intact" in out
    assert "row(s) whose ids could not be read" in out and "  damage found: " in out
    assert "the damaged original was moved to" in out
    assert "2 collection(s) examined: 1 repaired, 0 failed, 1 intact" in out
    code, out, _ = run(capsys, "info", db)
    assert code == 0 and "DAMAGED" not in out
    assert run(capsys, "check", db)[0] == 0


def test_repair_lists_lost_ids_first_twenty_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db(tmp_path, damaged_rows=50)
    _flip(db, "c", ".vec")
    code, out, _ = run(capsys, "repair", db, "--collection", "c")
    assert code == 0
    lost = next(line for line in out.splitlines() if "lost 50 record(s) by id" in line)
    assert "(first 20 shown)" in lost
    shown = lost.split(": ", 1)[1].split(", ")
    assert shown == [f"c{i:03d}" for i in range(20)]
    report = json.loads(run(capsys, "repair", db, "--collection", "c", "--json")[1])
    assert report["ok"] is True and report["reports"][0]["status"] == "intact"


def test_a_failed_repair_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path)
    _flip(db, "c", "MANIFEST")
    code, out, _ = run(capsys, "repair", db)
    assert code == 1
    assert "default/c: failed" in out and "  problem: " in out
    assert "nothing was changed" in out
    assert run(capsys, "repair", db, "--collection", "healthy", "--force")[0] == 0


def test_repair_bad_paths(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db(tmp_path)
    code, _, err = run(capsys, "repair", str(tmp_path / "nowhere"))
    assert code == 1 and "no KeelDB database" in err
    code, _, err = run(capsys, "repair", db, "--collection", "nope")
    assert code == 1 and "not found" in err
    code, _, err = run(capsys, "repair", "http://127.0.0.1:9")
    assert code == 2
    with keeldb.open(db):
        code, _, err = run(capsys, "repair", db)
        assert code == 1 and "stop the process" in err


# --- compaction phases ------------------------------------------------------------------------


def test_phase_progress_draws_each_phase_on_a_terminal() -> None:
    stream = io.StringIO()
    phases = PhaseProgress("c: ", stream=stream, enabled=True)
    phases("sealing", 0, 0)  # no rows: not drawn
    phases("vacuuming", 0, 500)
    phases("indexing", 0, 400)
    phases("indexing", 400, 400)
    phases("writing", 0, 400)
    phases("writing", 400, 400)
    phases("vacuuming", 500, 500)  # its line was ended by the nested phases
    phases.close()
    text = stream.getvalue()
    assert phases.phases == ["vacuuming", "indexing", "writing"]
    assert "c: indexing [" in text and "400/400" in text and "0/400" in text
    assert text.count("\n") == 3
    quiet = io.StringIO()
    off = PhaseProgress(stream=quiet, enabled=False)
    off("indexing", 0, 10)
    off("indexing", 10, 10)
    assert quiet.getvalue() == "" and off.phases == ["indexing"]


class _Recording(PhaseProgress):
    seen: list[PhaseProgress] = []

    def __init__(self, label: str = "", **kwargs: Any) -> None:
        super().__init__(label, stream=io.StringIO(), enabled=True)
        _Recording.seen.append(self)


def test_compact_and_import_index_report_phases(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "PhaseProgress", _Recording)
    monkeypatch.setattr(transfer, "PhaseProgress", _Recording)
    _Recording.seen = []
    db = str(tmp_path / "db")
    with keeldb.open(db) as database:
        col = database.create_collection("big", dim=8)
        col.upsert([f"r{i}" for i in range(10_050)], _vectors(10_050))
    assert run(capsys, "compact", db, "big")[0] == 0
    (phases,) = _Recording.seen
    assert "indexing" in phases.phases and "writing" in phases.phases
    assert isinstance(phases.stream, io.StringIO)
    assert "big: indexing [" in phases.stream.getvalue()

    _Recording.seen = []
    data = tmp_path / "d.npy"
    np.save(data, _vectors(10_020, seed=2))
    code, out, _ = run(capsys, "import", db, "imp", str(data), "--index")
    assert code == 0 and "index: hnsw" in out
    (phases,) = _Recording.seen
    assert "indexing" in phases.phases
