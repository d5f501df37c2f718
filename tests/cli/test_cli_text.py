"""``keeldb text-search`` / ``hybrid-search`` and documents through import and export,
on a directory and on a server URL (in process through ``keeldb.cli.main``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import keeldb
from keeldb.cli import main
from keeldb.server.testing import ServerProcess

DOCS = [
    "The quick brown fox jumps over the lazy dog.",
    "A lazy afternoon: the dog sleeps in the sun.",
    "Product code XK-42 is out of stock.",
]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _jsonl(path: Path) -> Path:
    lines = [
        json.dumps(
            {"id": f"d{i}", "vector": np.eye(3)[i].tolist(), "metadata": {"i": i}, "document": d}
        )
        for i, d in enumerate(DOCS)
    ]
    lines.append(json.dumps({"id": "plain", "vector": [1, 1, 1]}))  # no document
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    target = str(tmp_path / "db")
    code, _, err = run(
        capsys, "import", target, "docs", str(_jsonl(tmp_path / "d.jsonl")), "--metric", "l2", "-q"
    )
    assert code == 0, err
    return target


def test_import_stores_documents_and_export_writes_them_back(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with keeldb.open(db) as database:
        records = database.get_collection("docs").get(["d0", "plain"])
    assert records[0] is not None and records[0].document == DOCS[0]
    assert records[1] is not None and records[1].document is None
    for name in ("out.jsonl", "out.npz"):
        assert run(capsys, "export", db, "docs", str(tmp_path / name), "-q")[0] == 0
        assert run(capsys, "import", db, name, str(tmp_path / name), "--metric", "l2", "-q")[0] == 0
    lines = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [x.get("document") for x in lines] == [*DOCS, None]
    assert "document" not in lines[-1]  # a record without one is written as before
    with keeldb.open(db) as database:
        for name in ("out.jsonl", "out.npz"):
            recs = database.get_collection(name).get(["d2", "plain"])
            assert [r.document for r in recs if r is not None] == [DOCS[2], None]


def test_import_refuses_a_document_that_is_not_a_string(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "a", "vector": [1, 0], "document": 5}) + "\n")
    code, _, err = run(capsys, "import", str(tmp_path / "db"), "c", str(path), "-q")
    assert code == 1 and "'document' must be a string or null" in err


def test_text_search_prints_the_best_match_first(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "text-search", db, "docs", "lazy dog")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["RANK", "ID", "SCORE", "DOCUMENT"]
    assert [r.split()[1] for r in rows[1:]] == ["d1", "d0"]
    code, out, _ = run(capsys, "text-search", db, "docs", "xk-42", "--json")
    hits = json.loads(out)
    assert [h["id"] for h in hits] == ["d2"] and hits[0]["document"] == DOCS[2]
    assert hits[0]["score"] > 0 and hits[0]["distance"] == -hits[0]["score"]
    code, out, _ = run(capsys, "text-search", db, "docs", "dog", "--filter", '{"i": 0}', "--json")
    assert [h["id"] for h in json.loads(out)] == ["d0"]
    assert run(capsys, "text-search", db, "docs", "zebra")[1] == "no matches\n"


def test_hybrid_search_with_a_vector_or_like_a_record(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "hybrid-search", db, "docs", "stock", "--like", "d0", "--json")
    assert code == 0
    with keeldb.open(db) as database:
        col = database.get_collection("docs")
        expected = col.hybrid_search("stock", vector=np.eye(3)[0])
    assert [h["id"] for h in json.loads(out)] == [h.id for h in expected]
    args = ["--vector", "[0, 0, 1]", "--fusion", "weighted", "--weights", "1,2", "-k", "1"]
    code, out, _ = run(capsys, "hybrid-search", db, "docs", "dog", *args, "--json")
    assert [h["id"] for h in json.loads(out)] == ["d1"]  # text weighs twice the vector
    code, _, err = run(capsys, "hybrid-search", db, "docs", "dog", "--vector", "[0, 1]")
    assert code == 1 and "dimension_mismatch" in err
    code, _, err = run(capsys, "hybrid-search", db, "docs", "dog", "--like", "nope")
    assert code == 1 and "no record 'nope'" in err
    code, _, err = run(capsys, "hybrid-search", db, "docs", "dog", "--vector", "[0, 1")
    assert code == 2 and "--vector" in err
    # neither --vector nor --like: only a collection with an embedding function can
    code, _, err = run(capsys, "hybrid-search", db, "docs", "dog")
    assert code == 1 and "needs vector=" in err


def test_text_and_hybrid_search_on_a_server_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = "cli-text-key-1"
    with ServerProcess(tmp_path / "db", args=["--api-key", key]) as srv:
        base = [srv.url, "docs"]
        path = str(_jsonl(tmp_path / "d.jsonl"))
        code, _, err = run(capsys, "import", *base, path, "--metric", "l2", "-q", "--api-key", key)
        assert code == 0, err
        code, out, _ = run(capsys, "text-search", *base, "fox", "--json", "--api-key", key)
        assert [h["document"] for h in json.loads(out)] == [DOCS[0]]
        code, out, _ = run(
            capsys,
            "hybrid-search",
            *base,
            "fox",
            "--like",
            "d2",
            "-k",
            "2",
            "--json",
            "--api-key",
            key,
        )
        assert {h["id"] for h in json.loads(out)} == {"d0", "d2"}
