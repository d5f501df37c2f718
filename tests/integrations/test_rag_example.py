"""examples/rag.py runs offline on the shipped SciFact sample, embedded and on a server:
the hybrid retriever honours the metadata filter and every retriever type is scored."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("langchain_core", reason="needs the langchain extra")

from keeldb.server.testing import ServerProcess  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "rag.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("keeldb_rag_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(result: dict, out: str) -> None:
    assert len(result["shown"]) == 3
    for flt, passages in result["shown"]:
        assert len(passages) == 3
        assert {p.metadata["field"] for p in passages} == {flt["field"]}
        assert passages[0].metadata["title"] in out
    assert set(result["scores"]) == {"similarity", "text", "hybrid"}
    for s in result["scores"].values():
        assert 0.0 <= s["hit@3"] <= 1.0 and 0.0 <= s["recall@10"] <= 1.0
    assert "[judged relevant]" in out and "recall@10" in out


def test_rag_example_embedded(capsys: pytest.CaptureFixture[str]) -> None:
    result = _load().main([])
    _check(result, capsys.readouterr().out)


def test_rag_example_on_a_server(
    keel_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _load().main(["--url", keel_server.url])
    _check(result, capsys.readouterr().out)
