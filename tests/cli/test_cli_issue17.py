"""The CLI as a new user meets it (issue 17, items 4 and 5): bad paths give a message and
a non-zero exit instead of a traceback, a failed import leaves nothing it created behind,
conflicting parameters are named, an interrupted import says (truthfully) that re-running
resumes, ``import --index`` builds the index before returning, ``compact`` reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.cli import main, transfer


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _vectors(n: int, dim: int = 8, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def _write_jsonl(path: Path, vectors: np.ndarray, prefix: str = "j") -> None:
    lines = [
        json.dumps({"id": f"{prefix}{i}", "vector": v.tolist(), "metadata": {"i": i}})
        for i, v in enumerate(vectors)
    ]
    path.write_text("\n".join(lines) + "\n")


def _db_with(tmp_path: Path, metric: str = "cosine", n: int = 5) -> str:
    db = str(tmp_path / "db")
    with keeldb.open(db) as database:
        col = database.create_collection("z", dim=8, metric=metric)
        col.upsert([f"z{i}" for i in range(n)], _vectors(n))
    return db


def _names(db: str) -> list[str]:
    with keeldb.open(db) as database:
        return [i.name for i in database.list_collections()]


# --- bad paths: a message and a non-zero exit, never a traceback ---------------------------


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz", "x.npz"])
def test_export_into_a_missing_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    db = _db_with(tmp_path)
    target = tmp_path / "missing" / "dir" / name
    code, _, err = run(capsys, "export", db, "z", str(target))
    assert code == 2
    assert "directory" in err and "does not exist" in err and str(target.parent) in err
    assert "Traceback" not in err


def test_export_under_a_file_or_onto_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db_with(tmp_path)
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "export", db, "z", str(tmp_path / "afile" / "x.jsonl"))
    assert code == 2 and "not a directory" in err
    (tmp_path / "out.jsonl").mkdir()
    code, _, err = run(capsys, "export", db, "z", str(tmp_path / "out.jsonl"))
    assert code == 2 and "is a directory" in err


def test_an_os_error_while_writing_is_reported_not_raised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _db_with(tmp_path)

    def disk_full(*args: object, **kwargs: object) -> int:
        raise OSError(28, "No space left on device", str(tmp_path / "x.jsonl.keeldb-tmp"))

    monkeypatch.setattr(transfer, "write_jsonl_records", disk_full)
    code, _, err = run(capsys, "export", db, "z", str(tmp_path / "x.jsonl"))
    assert code == 1
    assert "No space left on device" in err and "x.jsonl.keeldb-tmp" in err


def test_import_side_files_that_do_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(5))
    db = str(tmp_path / "db")
    code, _, err = run(capsys, "import", db, "c", str(tmp_path / "v.npy"), "--ids", "/nope/ids")
    assert code == 2 and "/nope/ids" in err and "no such file" in err
    code, _, err = run(
        capsys, "import", db, "c", str(tmp_path / "v.npy"), "--metadata", "/nope/m.jsonl"
    )
    assert code == 2 and "/nope/m.jsonl" in err
    code, _, err = run(
        capsys, "import", db, "c", str(tmp_path / "v.npy"), "--checkpoint", "/nope/dir/cp.json"
    )
    assert code == 2 and "/nope/dir" in err and "does not exist" in err


def test_import_of_an_unreadable_compressed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "d.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage that is not deflate")
    code, _, err = run(capsys, "import", str(tmp_path / "db"), "c", str(tmp_path / "d.jsonl.gz"))
    assert code in (1, 2) and "d.jsonl.gz" in err


# --- a failed import leaves nothing it created ---------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        '{"id": "a", "vector": [1, 2, 3, 4]}\n{"id": "b", "vector": [1, 2]}\n',  # short vector
        '{"id": "a", "vector": [1, 2, 3, 4]}\n{bad\n',  # bad JSON line
        '{"id": "a", "vector": [1, 2, 3, 4], "metadata": {"x": NaN}}\n',  # refused by upsert
    ],
)
def test_failed_import_removes_the_collection_it_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    db = _db_with(tmp_path)
    (tmp_path / "bad.jsonl").write_text(content)
    code, _, err = run(capsys, "import", db, "new", str(tmp_path / "bad.jsonl"))
    assert code == 1
    assert "removed" in err and "default/new" in err
    assert _names(db) == ["z"]
    assert not (tmp_path / "bad.jsonl.keeldb-import.json").exists()


def test_failed_import_late_in_a_file_removes_its_collection_and_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    _write_jsonl(tmp_path / "d.jsonl", _vectors(100))
    with (tmp_path / "d.jsonl").open("a") as f:
        f.write("{bad\n")
    code, _, err = run(
        capsys, "import", db, "c", str(tmp_path / "d.jsonl"), "--batch-size", "10",
        "--checkpoint-every", "2",
    )  # fmt: skip
    assert code == 1 and "line 101" in err
    assert _names(db) == []
    assert not (tmp_path / "d.jsonl.keeldb-import.json").exists()


def test_failed_import_into_an_existing_collection_keeps_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db_with(tmp_path)
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": [1, 2, 3, 4, 5, 6, 7, 8]}\n{x\n')
    code, _, err = run(capsys, "import", db, "z", str(tmp_path / "bad.jsonl"))
    assert code == 1 and "line 2" in err and "removed" not in err
    with keeldb.open(db) as database:
        assert database.get_collection("z").count() >= 5


# --- conflicting parameters ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value", "named"),
    [
        ("--metric", "l2", "metric"),
        ("--m", "8", "m"),
        ("--ef-construction", "50", "ef_construction"),
    ],
)
def test_import_option_that_differs_from_the_existing_collection(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, named: str
) -> None:
    db = _db_with(tmp_path, metric="cosine")
    np.save(tmp_path / "v.npy", _vectors(3))
    code, _, err = run(capsys, "import", db, "z", str(tmp_path / "v.npy"), option, value)
    assert code == 2
    assert f"{named}=" in err and value in err and option in err
    with keeldb.open(db) as database:
        assert database.get_collection("z").count() == 5  # nothing imported


def test_import_option_equal_to_the_existing_collection_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _db_with(tmp_path, metric="l2")
    np.save(tmp_path / "v.npy", _vectors(3))
    args = ["import", db, "z", str(tmp_path / "v.npy"), "--id-prefix", "v"]
    assert run(capsys, *args, "--metric", "l2", "--m", "16")[0] == 0
    assert run(capsys, *args)[0] == 0  # no option given: the collection's own parameters


def test_new_collection_gets_the_given_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(3))
    db = str(tmp_path / "db")
    code, _, _ = run(capsys, "import", db, "c", str(tmp_path / "v.npy"), "--m", "8")
    assert code == 0
    with keeldb.open(db) as database:
        info = database.get_collection("c").info()
        assert (info.metric, info.m, info.ef_construction) == ("cosine", 8, 200)


# --- interruption and resume ---------------------------------------------------------------


_SLOW_IMPORT = """
import sys, time
import keeldb
from keeldb.cli import main
real = keeldb.Collection.upsert
calls = [0]
def slow(self, *a, **kw):
    real(self, *a, **kw)
    calls[0] += 1
    # After a few batches (a checkpoint is written every 2), wait for the test's Ctrl-C:
    # the import cannot finish first however slowly the parent polls on a loaded machine.
    time.sleep(0.02 if calls[0] < 6 else 120)
keeldb.Collection.upsert = slow
sys.exit(main(sys.argv[1:]))
"""


def test_sigint_says_rerun_resumes_and_rerunning_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vectors = _vectors(3000)
    _write_jsonl(tmp_path / "d.jsonl", vectors)
    db = str(tmp_path / "db")
    args = ["import", db, "c", str(tmp_path / "d.jsonl"), "--batch-size", "10"]
    checkpoint = tmp_path / "d.jsonl.keeldb-import.json"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_IMPORT, *args, "--checkpoint-every", "2", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not checkpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoint.exists(), proc.communicate(timeout=60)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    done = json.loads(checkpoint.read_text())["rows_done"]
    assert 0 < done < 3000
    assert f"row {done:,}" in err and "re-run the same command to resume" in err.lower()
    code, out, _ = run(capsys, *args)
    assert code == 0
    assert f"resuming at row {done:,}" in out
    assert not checkpoint.exists()
    with keeldb.open(db) as database:
        col = database.get_collection("c")
        assert col.count() == 3000
        got = col.get([f"j{i}" for i in (0, done - 1, done, 2999)])
        assert all(r is not None for r in got)


def test_resume_refuses_when_the_collection_has_gone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_jsonl(tmp_path / "d.jsonl", _vectors(40))
    db = str(tmp_path / "db")
    args = ["import", db, "c", str(tmp_path / "d.jsonl"), "--batch-size", "10"]
    identity = transfer._checkpoint_identity(main.__globals__["build_parser"]().parse_args(args))
    (tmp_path / "d.jsonl.keeldb-import.json").write_text(json.dumps({**identity, "rows_done": 20}))
    code, _, err = run(capsys, *args)
    assert code == 1 and "does not exist" in err and "--no-resume" in err
    assert _names(db) == []  # rows 0-19 would have been skipped
    assert run(capsys, *args, "--no-resume")[0] == 0


# --- index build and compact progress ------------------------------------------------------


def test_import_with_index_builds_hnsw_before_returning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(10_000, dim=4))
    db = str(tmp_path / "db")
    cheap = ["--m", "4", "--ef-construction", "16"]  # a quick graph: the test is the flow
    code, out, _ = run(capsys, "import", db, "c", str(tmp_path / "v.npy"), "--index", *cheap)
    assert code == 0
    assert "building the HNSW index for 10,000 records" in out
    assert "index: hnsw" in out
    with keeldb.open(db) as database:
        stats = database.get_collection("c").stats()
        assert stats.index_type == "hnsw"
        assert [s.kind for s in stats.segments if s.rows] == ["hnsw"]


def test_import_with_index_on_a_small_collection_says_it_stays_exact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(50))
    code, out, _ = run(
        capsys, "import", str(tmp_path / "db"), "c", str(tmp_path / "v.npy"), "--index"
    )
    assert code == 0 and "index: flat" in out and "searched exactly" in out


def test_import_without_index_says_when_indexing_happens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "v.npy", _vectors(50))
    code, out, _ = run(capsys, "import", str(tmp_path / "db"), "c", str(tmp_path / "v.npy"))
    assert code == 0 and "background" in out and "keeldb compact" in out and "--index" in out


def test_compact_says_what_it_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _db_with(tmp_path, n=30)
    code, out, _ = run(capsys, "compact", db, "z")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("compacting default/z (30 records")
    assert lines[1].startswith("default/z: segments") and "index flat" in lines[1]
    code, out, _ = run(capsys, "compact", db, "-w", "nobody")
    assert code == 0 and "no collections to compact" in out


def test_no_command_prints_a_traceback_for_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "nowhere")
    for argv in (
        ["info", missing],
        ["stats", missing, "c"],
        ["check", missing],
        ["compact", missing],
        ["export", missing, "c", str(tmp_path / "x.jsonl")],
    ):
        code, _, err = run(capsys, *argv)
        assert code == 1 and "no KeelDB database" in err, argv
    assert not os.path.exists(missing)


def test_serve_start_errors_are_one_line_with_their_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "db")
    code, _, err = run(capsys, "serve", db, "--api-key", "short", "--port", "1")
    assert code == 1 and "at least 8 characters" in err
    code, _, err = run(capsys, "serve", db, "--keys-file", str(tmp_path / "none.json"))
    assert code == 1 and "none.json" in err
    code, _, err = run(capsys, "serve", db, "--host", "0.0.0.0", "--port", "1")
    assert code == 2 and "without API keys" in err
