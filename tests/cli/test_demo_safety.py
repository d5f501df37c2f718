"""``examples/demo.py DIR`` never deletes a directory holding the user's files (issue 17,
item 6): it runs in a new or empty directory, or one an earlier demo run marked as its own.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def _demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keeldb_demo", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_refuses_a_directory_with_the_users_files(tmp_path: Path) -> None:
    mydir = tmp_path / "mydir"
    mydir.mkdir()
    (mydir / "notes.txt").write_text("precious")
    done = subprocess.run(
        [sys.executable, str(DEMO), str(mydir)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert "refusing" in done.stderr and str(mydir) in done.stderr
    assert "Traceback" not in done.stderr
    assert (mydir / "notes.txt").read_text() == "precious"


def test_demo_refuses_a_keeldb_database_it_did_not_create(tmp_path: Path) -> None:
    import keeldb

    with keeldb.open(tmp_path / "db") as db:
        db.create_collection("mine", dim=4)
    demo = _demo()
    with pytest.raises(SystemExit) as refused:
        demo.prepare_target(str(tmp_path / "db"))
    assert refused.value.code == 2
    with keeldb.open(tmp_path / "db") as db:
        assert [c.name for c in db.list_collections()] == ["mine"]


def test_demo_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(SystemExit):
        _demo().prepare_target(str(tmp_path / "f"))
    assert (tmp_path / "f").read_text() == "x"


def test_demo_uses_a_new_or_empty_directory_and_marks_it(tmp_path: Path) -> None:
    demo = _demo()
    for path in (tmp_path / "new", tmp_path / "empty"):
        if path.name == "empty":
            path.mkdir()
        demo.prepare_target(str(path))
        assert path.is_dir()
        assert [p.name for p in path.iterdir()] == [demo.MARKER]


def _earlier_run(path: Path) -> ModuleType:
    import keeldb

    demo = _demo()
    demo.prepare_target(str(path))
    with keeldb.open(path) as db:  # what the demo itself writes there
        db.create_collection("packages", dim=4).upsert(["a"], [[1.0, 0.0, 0.0, 0.0]])
    return demo


def test_demo_reuses_a_directory_it_created(tmp_path: Path) -> None:
    path = tmp_path / "d"
    demo = _earlier_run(path)
    demo.prepare_target(str(path))  # its own: cleared and marked again
    assert [p.name for p in path.iterdir()] == [demo.MARKER]


@pytest.mark.parametrize("where", [".", "workspaces", "workspaces/default", "workspaces/mine"])
def test_demo_refuses_its_own_directory_once_the_user_added_files(
    tmp_path: Path, where: str
) -> None:
    path = tmp_path / "d"
    demo = _earlier_run(path)
    (path / where).mkdir(parents=True, exist_ok=True)
    (path / where / "notes.txt").write_text("precious")
    with pytest.raises(SystemExit):
        demo.prepare_target(str(path))
    assert (path / where / "notes.txt").read_text() == "precious"


def test_a_forged_marker_on_a_symlink_is_not_followed(tmp_path: Path) -> None:
    demo = _demo()
    real = tmp_path / "real"
    real.mkdir()
    (real / demo.MARKER).write_text("not really")
    (real / "keep").write_text("x")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(SystemExit):
        demo.prepare_target(str(link))
    assert (real / "keep").exists()
