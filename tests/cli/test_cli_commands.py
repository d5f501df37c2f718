"""Every ``keeldb`` command, run in process through ``keeldb.cli.main``."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import keeldb
from keeldb.cli import main
from keeldb.cli.progress import Progress
from keeldb.server.testing import ServerProcess


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _vectors(n: int = 300, dim: int = 8) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(n, dim)).astype(np.float32)


def _write_jsonl(path: Path, vectors: np.ndarray, gz: bool = False) -> None:
    lines = [
        json.dumps({"id": f"j{i}", "vector": v.tolist(), "metadata": {"i": i, "odd": i % 2 == 1}})
        for i, v in enumerate(vectors)
    ]
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if gz else data)


def test_import_npy_with_ids_and_metadata_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = _vectors().astype(np.float16)  # like the benchmark dataset
    np.save(tmp_path / "base.npy", vectors)
    (tmp_path / "ids.txt").write_text("\n".join(f"doc-{i}" for i in range(300)) + "\n")
    with gzip.open(tmp_path / "meta.jsonl.gz", "wt") as f:
        for i in range(300):
            f.write(json.dumps({"year": 2000 + i % 20}) + "\n")
    db = str(tmp_path / "db")
    code, out, _ = run(
        capsys,
        "import",
        db,
        "docs",
        str(tmp_path / "base.npy"),
        "--ids",
        str(tmp_path / "ids.txt"),
        "--metadata",
        str(tmp_path / "meta.jsonl.gz"),
        "--metric",
        "l2",
        "--batch-size",
        "64",
    )
    assert code == 0, out
    assert "imported 300 records" in out
    with keeldb.open(db) as database:
        col = database.get_collection("docs")
        assert (col.count(), col.dim, col.metric) == (300, 8, "l2")
        rec = col.get(["doc-7"])[0]
        assert rec is not None and rec.metadata == {"year": 2007}
        np.testing.assert_allclose(rec.vector, vectors[7].astype(np.float32))
    assert not (tmp_path / "base.npy.keeldb-import.json").exists()


def test_import_npy_without_ids_uses_row_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(20))
    code, _, _ = run(
        capsys,
        "import",
        str(tmp_path / "db"),
        "c",
        str(tmp_path / "v.npy"),
        "--id-prefix",
        "row-",
        "-w",
        "team",
    )
    assert code == 0
    with keeldb.open(tmp_path / "db") as database:
        assert database.get_collection("c", workspace="team").get(["row-19"])[0] is not None


@pytest.mark.parametrize("name", ["data.jsonl", "data.jsonl.gz"])
def test_import_jsonl_then_export_roundtrips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    vectors = _vectors(120)
    _write_jsonl(tmp_path / name, vectors, gz=name.endswith(".gz"))
    db = str(tmp_path / "db")
    assert run(capsys, "import", db, "c", str(tmp_path / name), "--metric", "l2")[0] == 0
    for out_name in ("out.jsonl", "out.jsonl.gz", "out.npz"):
        code, out, _ = run(capsys, "export", db, "c", str(tmp_path / out_name))
        assert code == 0 and "exported 120 records" in out
        assert not list(tmp_path.glob("*.keeldb-tmp"))
        assert (
            run(
                capsys,
                "import",
                db,
                out_name.replace(".", "_"),
                str(tmp_path / out_name),
                "--metric",
                "l2",
            )[0]
            == 0
        )
    with keeldb.open(db) as database:
        original = database.get_collection("c")
        for copy_name in ("out_jsonl", "out_jsonl_gz", "out_npz"):
            copy = database.get_collection(copy_name)
            assert copy.count() == 120
            a, b = original.get(["j5"])[0], copy.get(["j5"])[0]
            assert a is not None and b is not None and a.metadata == b.metadata
            np.testing.assert_array_equal(a.vector, b.vector)  # lossless


def test_export_with_filter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_jsonl(tmp_path / "d.jsonl", _vectors(50))
    db = str(tmp_path / "db")
    run(capsys, "import", db, "c", str(tmp_path / "d.jsonl"))
    code, out, _ = run(
        capsys, "export", db, "c", str(tmp_path / "odd.jsonl"), "--filter", '{"odd": true}'
    )
    assert code == 0 and "exported 25 records" in out
    rows = [json.loads(x) for x in (tmp_path / "odd.jsonl").read_text().splitlines()]
    assert len(rows) == 25 and all(r["metadata"]["odd"] for r in rows)
    assert run(capsys, "export", db, "c", str(tmp_path / "x.jsonl"), "--filter", "{bad")[0] == 2
    assert run(capsys, "export", db, "c", str(tmp_path / "x.csv"))[0] == 2


def test_import_resumes_from_its_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_jsonl(tmp_path / "d.jsonl", _vectors(300))
    db = str(tmp_path / "db")
    args = [
        "import",
        db,
        "c",
        str(tmp_path / "d.jsonl"),
        "--batch-size",
        "20",
        "--checkpoint-every",
        "3",
    ]
    real_upsert = keeldb.Collection.upsert
    calls = {"n": 0}

    def flaky_upsert(self: Any, *a: Any, **kw: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        real_upsert(self, *a, **kw)

    monkeypatch.setattr(keeldb.Collection, "upsert", flaky_upsert)
    code, _, err = run(capsys, *args)
    assert code == 130 and "interrupted" in err
    checkpoint = json.loads((tmp_path / "d.jsonl.keeldb-import.json").read_text())
    assert checkpoint["rows_done"] == 120  # two checkpoints of 3 batches of 20
    monkeypatch.setattr(keeldb.Collection, "upsert", real_upsert)
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert "resuming at row 120" in out and "imported 180 records" in out
    assert not (tmp_path / "d.jsonl.keeldb-import.json").exists()
    with keeldb.open(db) as database:
        assert database.get_collection("c").count() == 300


def test_stale_checkpoint_is_refused_unless_no_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_jsonl(tmp_path / "d.jsonl", _vectors(10))
    (tmp_path / "d.jsonl.keeldb-import.json").write_text('{"version": 1, "rows_done": 5}')
    db = str(tmp_path / "db")
    code, _, err = run(capsys, "import", db, "c", str(tmp_path / "d.jsonl"))
    assert code == 1 and "another import" in err
    assert run(capsys, "import", db, "c", str(tmp_path / "d.jsonl"), "--no-resume")[0] == 0


def test_import_reports_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "db")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": [1, 2]}\n{"id": "b"}\n')
    code, _, err = run(capsys, "import", db, "c", str(tmp_path / "bad.jsonl"))
    assert code == 1 and "line 2" in err
    (tmp_path / "x.csv").write_text("1,2\n")
    assert run(capsys, "import", db, "c", str(tmp_path / "x.csv"))[0] == 2
    assert run(capsys, "import", db, "c", str(tmp_path / "missing.npy"))[0] == 2
    np.save(tmp_path / "wrongdim.npy", np.ones((3, 5), np.float32))
    np.save(tmp_path / "rightdim.npy", np.ones((3, 4), np.float32))
    assert run(capsys, "import", db, "d", str(tmp_path / "rightdim.npy"), "--metric", "l2")[0] == 0
    code, _, err = run(capsys, "import", db, "d", str(tmp_path / "wrongdim.npy"))
    assert code == 1 and "5-d" in err
    code, _, err = run(capsys, "import", db, "nope", str(tmp_path / "rightdim.npy"), "--no-create")
    assert code == 1 and "collection_not_found" in err


def _populated(tmp_path: Path) -> str:
    db = str(tmp_path / "db")
    with keeldb.open(db) as database:
        col = database.create_collection("c", dim=8, metric="l2")
        col.upsert([f"i{i}" for i in range(50)], _vectors(50), [{"i": i} for i in range(50)])
        col.delete(ids=["i1", "i2"])
        database.create_collection("d", dim=4, workspace="team")
    return db


def test_info_and_stats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _populated(tmp_path)
    code, out, _ = run(capsys, "info", db)
    assert code == 0
    assert "2 workspace(s), 2 collection(s)" in out and "team" in out and "48" in out
    code, out, _ = run(capsys, "info", db, "--json")
    info = json.loads(out)
    assert sorted(info["workspaces"]) == ["default", "team"]
    by_name = {c["name"]: c for c in info["collections"]}
    assert by_name["c"]["count"] == 48 and by_name["c"]["dim"] == 8
    code, out, _ = run(capsys, "stats", db, "c")
    assert code == 0 and "48 live" in out
    stats = json.loads(run(capsys, "stats", db, "d", "-w", "team", "--json")[1])
    assert stats["stats"]["live_count"] == 0 and stats["info"]["dim"] == 4
    code, _, err = run(capsys, "stats", db, "zzz")
    assert code == 1 and "collection_not_found" in err
    code, _, err = run(capsys, "info", str(tmp_path / "nowhere"))
    assert code == 1 and "no KeelDB database" in err
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "plain").mkdir()
    code, _, err = run(capsys, "info", str(tmp_path / "plain"))
    assert code == 1 and "no KeelDB database" in err
    assert list((tmp_path / "plain").iterdir()) == []  # nothing created there


def test_compact_one_and_all(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _populated(tmp_path)
    code, out, _ = run(capsys, "compact", db, "c")
    assert code == 0 and out.splitlines()[1].startswith("default/c: segments")
    code, out, _ = run(capsys, "compact", db)
    assert code == 0 and "default/c" in out and "team/d" in out
    code, out, _ = run(capsys, "compact", db, "-w", "team")
    assert code == 0 and "team/d" in out and "default/c" not in out
    with keeldb.open(db) as database:
        assert database.get_collection("c").count() == 48


def test_check_intact_and_damaged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _populated(tmp_path)
    with keeldb.open(db) as database:
        database.get_collection("c").flush()
    code, out, _ = run(capsys, "check", db)
    assert code == 0 and out.startswith("ok:")
    assert json.loads(run(capsys, "check", db, "--json")[1])["ok"] is True
    # Flip one byte in the middle of the largest file.
    files = [p for p in Path(db).rglob("*") if p.is_file() and p.name != "LOCK"]
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    code, out, _ = run(capsys, "check", db)
    assert code == 1
    assert out.startswith("DAMAGED:") and "  - " in out
    report = json.loads(run(capsys, "check", db, "--json")[1])
    assert report["ok"] is False and report["problems"]
    assert run(capsys, "check", str(tmp_path / "nowhere"))[0] == 1


def test_locked_database_gives_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _populated(tmp_path)
    with keeldb.open(db):
        code, _, err = run(capsys, "info", db)
        assert code == 1 and "URL" in err
        code, _, err = run(capsys, "check", db)
        assert code == 1 and "stop the process" in err


def test_commands_work_against_a_server_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_jsonl(tmp_path / "d.jsonl", _vectors(40))
    with ServerProcess(tmp_path / "db", args=["--api-key", "cli-url-key-1"]) as srv:
        key = ["--api-key", "cli-url-key-1"]
        assert run(capsys, "import", srv.url, "c", str(tmp_path / "d.jsonl"), *key)[0] == 0
        code, out, _ = run(capsys, "info", srv.url, *key)
        assert code == 0 and "1 collection(s)" in out
        assert run(capsys, "stats", srv.url, "c", *key)[0] == 0
        assert run(capsys, "compact", srv.url, "c", *key)[0] == 0
        assert run(capsys, "export", srv.url, "c", str(tmp_path / "o.jsonl"), *key)[0] == 0
        code, _, err = run(capsys, "info", srv.url)  # no key
        assert code == 1 and "unauthorized" in err
        assert run(capsys, "check", srv.url)[0] == 2
    assert len((tmp_path / "o.jsonl").read_text().splitlines()) == 40


def test_base_commands_do_not_import_the_server_stack(tmp_path: Path) -> None:
    db = _populated(tmp_path)
    code = (
        "import sys; from keeldb.cli import main; rc = main(['info', sys.argv[1]]);"
        "bad = [m for m in ('fastapi', 'uvicorn', 'httpx', 'starlette') if m in sys.modules];"
        "print('LOADED', bad); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, db], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout


def test_console_script_runs(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("keeldb")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "keeldb.cli"]
    done = subprocess.run([*cmd, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("keeldb ")


def test_progress_bar_is_quiet_off_tty_and_draws_on_one() -> None:
    import io

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    silent = io.StringIO()
    p = Progress(100, "import", stream=silent)
    p.advance(50)
    p.close()
    assert silent.getvalue() == ""
    tty = Tty()
    p = Progress(100, "import", stream=tty, interval_s=0)
    p.advance(50)
    p.close()
    assert "[###############..............." in tty.getvalue() and "50/100" in tty.getvalue()
    assert tty.getvalue().endswith("\n")
    unknown = Progress(None, "export", stream=silent)
    unknown.advance(1234)
    assert "1,234" in unknown.render()
