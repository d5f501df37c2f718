"""The report splicers keep a section (or subsection) of docs/benchmarks.md whose result
file is absent: each benchmark runs on its own and results are not committed, so a
splice after one benchmark must not wipe the others' figures."""

from __future__ import annotations

import json
from pathlib import Path

from bench import report_issue16, report_memory

DOC = """# Benchmarks

## 7. Quantised graphs

QUANT FIGURES KEPT

## 8. Past RAM

No result: run `python -m bench.past_ram --rows 1000000 --dim 384`.

{issue16}
## Failures and gaps

none
"""

ISSUE16 = """## 9. Generated predicates, load, fixed cost per query (issue 16)

Intro.

### 9.1. Predicate family on `pypi` data

PYPI PREDICATES KEPT

### 9.3. Every plan under load

LOAD KEPT

### 9.4. Fixed cost per query, and the default call against raw faiss

OLD OVERHEAD
"""

PAST_RAM = {
    "files_bytes": 3 << 30,
    "limit_bytes": 512 << 20,
    "unlimited": {"returncode": 0, "oom_killed": False, "max_usage_bytes": 2 << 30, "qps": 12.0},
    "limited": {"returncode": 0, "oom_killed": False, "max_usage_bytes": 512 << 20, "qps": 6.0},
    "same_ids": True,
    "rows": 1000,
    "dim": 8,
    "queries": 5,
}


def test_memory_sections_without_results_are_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC.format(issue16=""))
    results = tmp_path / "results"
    results.mkdir()
    (results / "past_ram.json").write_text(json.dumps(PAST_RAM))
    report_memory.splice(doc, results)
    text = doc.read_text()
    assert "QUANT FIGURES KEPT" in text  # no quantization*.json here
    assert "No result: run `python -m bench.past_ram" not in text
    assert "| limited | 6.0 | 512 | no |" in text
    assert text.index("## 7.") < text.index("## 8.") < text.index("## Failures and gaps")


def test_issue16_subsections_without_results_are_kept(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(DOC.format(issue16=ISSUE16))
    results = tmp_path / "results"
    results.mkdir()
    report_issue16.splice(doc, results)  # no result files at all: every subsection kept
    text = doc.read_text()
    for kept in ("PYPI PREDICATES KEPT", "LOAD KEPT", "OLD OVERHEAD"):
        assert kept in text
    assert "No results yet" not in text
    (results / "overhead.json").write_text("{}")
    calls: list[Path] = []

    def fake_overhead(path: Path) -> list[str]:
        calls.append(path)
        return [
            "### 9.4. Fixed cost per query, and the default call against raw faiss",
            "",
            "NEW OVERHEAD",
            "",
        ]

    import pytest

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(report_issue16, "_overhead", fake_overhead)
        report_issue16.splice(doc, results)
    text = doc.read_text()
    assert calls == [results / "overhead.json"]
    assert "NEW OVERHEAD" in text and "OLD OVERHEAD" not in text
    assert "PYPI PREDICATES KEPT" in text and "LOAD KEPT" in text
    assert "No results yet" not in text
    assert text.index("### 9.1.") < text.index("### 9.3.") < text.index("### 9.4.")
    assert text.index("### 9.4.") < text.index("## Failures and gaps")


def test_a_run_of_some_text_peers_keeps_the_others_results() -> None:
    # `python -m bench text-peers --systems keeldb` must not erase LanceDB's, Milvus's
    # and Chroma's last results from text_peers.json.
    from bench.text_peers import merge_results

    previous = [{"system": "KeelDB", "v": 1}, {"system": "LanceDB", "v": 1},
                {"system": "Chroma", "v": 1}]  # fmt: skip
    fresh = [{"system": "KeelDB", "v": 2}, {"system": "Qdrant", "v": 2}]
    assert merge_results(previous, fresh) == [
        {"system": "KeelDB", "v": 2}, {"system": "LanceDB", "v": 1},
        {"system": "Chroma", "v": 1}, {"system": "Qdrant", "v": 2},
    ]  # fmt: skip
    assert merge_results([], fresh) == fresh
