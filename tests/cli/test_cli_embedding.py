"""``keeldb search --text`` and ``keeldb hybrid-search`` without a dense query, on a
collection with an embedding function (issue 14), on a directory and on a server URL
(the server imports the test function's module with ``--embeddings-module``)."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import keeldb
from keeldb.cli import main
from keeldb.server.testing import ServerProcess

HELPERS = str(Path(__file__).resolve().parents[1] / "client")
DOCS = [
    "the quick brown fox jumps",
    "lazy dogs sleep all day",
    "a quick dog runs home",
    "vector databases store embeddings",
]
IDS = [f"d{i}" for i in range(len(DOCS))]


@pytest.fixture(scope="module")
def wordhash() -> Iterator[Any]:
    """The test embedding function's module (registers ``test-word-hash``)."""
    sys.path.insert(0, HELPERS)
    try:
        yield importlib.import_module("wordhash_embedding")
    finally:
        sys.path.remove(HELPERS)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _fill(db: Any, wordhash: Any) -> None:
    col = db.create_collection("docs", embedding=wordhash.WordHash())
    col.upsert(IDS, documents=DOCS)


def test_search_by_text_on_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wordhash: Any
) -> None:
    path = str(tmp_path / "db")
    with keeldb.open(path) as db:
        _fill(db, wordhash)
        expected = [h.id for h in db.get_collection("docs").search("quick fox", 3)]
        hybrid = [h.id for h in db.get_collection("docs").hybrid_search("quick dog", 3)]
    assert expected[0] == "d0"
    code, out, err = run(capsys, "search", path, "docs", "--text", "quick fox", "-k", "3")
    assert code == 0, err
    rows = out.splitlines()
    assert rows[0].split() == ["RANK", "ID", "DISTANCE", "DOCUMENT"]
    assert [r.split()[1] for r in rows[1:]] == expected
    code, out, _ = run(capsys, "search", path, "docs", "--like", "d1", "-k", "1", "--json")
    assert [h["id"] for h in json.loads(out)] == ["d1"]
    code, out, _ = run(capsys, "hybrid-search", path, "docs", "quick dog", "-k", "3", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == hybrid
    with pytest.raises(SystemExit):  # one of --text / --vector / --like is required
        main(["search", path, "docs"])


def test_search_by_text_needs_an_embedding_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "db")
    with keeldb.open(path) as db:
        db.create_collection("plain", dim=2).upsert(["a"], [[1.0, 0.0]])
    code, _, err = run(capsys, "search", path, "plain", "--text", "anything")
    assert code == 1 and "embedding function" in err
    code, out, _ = run(capsys, "search", path, "plain", "--vector", "[1, 0]", "--json")
    assert code == 0 and [h["id"] for h in json.loads(out)] == ["a"]


def test_search_by_text_on_a_server_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wordhash: Any
) -> None:
    args = ["--embeddings-module", "wordhash_embedding"]
    with ServerProcess(tmp_path / "db", args=args, env={"PYTHONPATH": HELPERS}) as srv:
        with keeldb.Client(srv.url) as client:
            col = client.create_collection("docs", embedding=wordhash.WordHash())
            col.upsert(IDS, documents=DOCS)
            expected = [h.id for h in col.search("quick fox", 2)]
            hybrid = [h.id for h in col.hybrid_search("quick dog", 2)]
        code, out, err = run(
            capsys, "search", srv.url, "docs", "--text", "quick fox", "-k", "2", "--json"
        )
        assert code == 0, err
        hits = json.loads(out)
        assert [h["id"] for h in hits] == expected and hits[0]["document"] == DOCS[0]
        code, out, _ = run(
            capsys, "hybrid-search", srv.url, "docs", "quick dog", "-k", "2", "--json"
        )
        assert [h["id"] for h in json.loads(out)] == hybrid


def test_serve_refuses_a_module_it_cannot_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(
        capsys, "serve", str(tmp_path / "db"), "--embeddings-module", "no_such_module_xyz"
    )
    assert code == 2 and "--embeddings-module no_such_module_xyz" in err
