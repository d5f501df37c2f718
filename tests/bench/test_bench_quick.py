"""Smoke test of the benchmark suite: quick mode for KeelDB and raw faiss, then the report.

Runs in the project's environment only (no peer environments: setting those up is slow
and needs the package index), so the suite cannot rot unnoticed between `make bench` runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import data, driver, report

pytestmark = pytest.mark.skipif(
    not (data.DATASET / "base.f16.npy").exists(),
    reason=f"benchmark data set not found at {data.DATASET}",
)


def _has_keeldb_open() -> bool:
    import keeldb

    return hasattr(keeldb, "open")


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not _has_keeldb_open():
        pytest.skip("keeldb.open is not available yet")
    out = tmp_path_factory.mktemp("bench-quick")
    driver.run("quick", ["keeldb", "faiss-hnsw", "chroma"], out, project_env_only=True)
    return out


@pytest.mark.timeout(900)
def test_quick_mode_results_are_sane(quick_results: Path) -> None:
    for name in ("keeldb", "faiss-hnsw"):
        r = json.loads((quick_results / f"{name}.json").read_text())
        assert r["status"] == "ok", r.get("log_tail", r.get("error"))
        assert r["n_base"] == data.QUICK_BASE
        cases = r["cases"]
        ingest = cases["ingest"]
        assert ingest["ack_rate_vps"] > 0 and ingest["indexed_s"] >= ingest["ack_s"] > 0
        points = cases["sweep"]["points"]
        assert [p["ef"] for p in points] == [32, 128]
        for p in points:
            assert 0.0 <= p["recall"] <= 1.0 and p["qps_single"] > 0 and p["qps_batch"] > 0
        assert points[-1]["recall"] >= 0.9  # ef=128 on 10k rows: a broken harness shows here
        for c in cases["filtered"]["cases"]:
            assert c["status"] == "ok" and 0.0 <= c["recall"] <= 1.0 and c["qps"] > 0
        cold = cases["cold_open"]
        assert cold["open_first_query_s"] > 0 and cold["first_query_correct_ids"] >= 5
        assert cases["footprint"]["disk"]["apparent_bytes"] > 0
        assert r["run"]["load_before"] and r["run"]["load_after"]
    keel = json.loads((quick_results / "keeldb.json").read_text())["cases"]
    exact = keel["filtered_exact"]["cases"]
    assert [c["case"] for c in exact] == [c["case"] for c in keel["filtered"]["cases"]]
    assert all(c["status"] == "ok" and c["recall"] == 1.0 for c in exact), exact
    sweep = keel["filtered_sweep"]
    assert sweep["status"] == "ok", sweep
    swept = [p["ef"] for p in keel["sweep"]["points"]]
    above = [ef for ef in swept if ef > keel["sweep"]["ef_at_target"]]
    assert [p["ef"] for p in sweep["points"]] == above  # every swept ef above ef_at_target
    assert all(c["status"] == "ok" for p in sweep["points"] for c in p["cases"])
    paired = keel["paired_faiss"]
    assert paired["status"] == "ok", paired
    assert paired["single_qps_ratio"] > 0 and paired["batch_qps_ratio"] > 0
    assert paired["single_qps_ratio_bare"] > 0 and paired["batch_qps_ratio_bare"] > 0
    assert min(paired["recall"].values()) >= 0.8, paired["recall"]
    assert paired["faiss_build_s"] > 0
    # a peer whose environment is absent is reported, not dropped
    chroma = json.loads((quick_results / "chroma.json").read_text())
    assert chroma["status"] == "not set up" and "bench setup" in chroma["error"]


@pytest.mark.timeout(900)
def test_report_is_generated_from_quick_results(quick_results: Path, tmp_path: Path) -> None:
    md = report.write("quick", quick_results, tmp_path / "benchmarks.md", tmp_path / "img")
    text = md.read_text()
    for heading in (
        "## Targets",
        "## 1. Recall@10 vs QPS",
        "## 2. Ingest",
        "## 3. Filtered search",
        "## 4. Cold open",
        "## 5. Footprint",
    ):
        assert heading in text
    assert "KeelDB" in text and "faiss IndexHNSWFlat" in text
    assert "not set up" in text  # chroma's absence is stated
    assert "PASS" in text or "FAIL" in text
    assert (tmp_path / "img" / "bench-recall-qps.png").stat().st_size > 0
    assert (tmp_path / "img" / "bench-ingest.png").stat().st_size > 0
    assert (tmp_path / "img" / "bench-filtered.png").stat().st_size > 0
    assert "KeelDB setting" in text  # the filtered ef sweep's table
