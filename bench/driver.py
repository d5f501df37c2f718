"""Run the systems one after another, each in its own process and environment.

For every system the driver records the load average before and after, the runner's exit
status and the tail of its log; a runner that crashes, times out or cannot be set up is
written as a result with ``status`` "failed" or "not set up" and its error, never dropped.
Results go to ``bench/results/<mode>/<system>.json`` (one file per system; a later run of
the same system replaces it) with the runner's output in ``<system>.log``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import data, systems

REPO = systems.REPO
RESULTS = REPO / "bench" / "results"

MODES: dict[str, dict[str, Any]] = {
    # few settings, small sample: a smoke run that finishes in a few minutes
    "quick": {
        "efs": "32,128",
        "repeats": 3,
        "cold_repeats": 3,
        "pass_budget_s": 3.0,
        "min_queries": 100,
        "timeout_s": 900,
    },
    "full": {
        "efs": "16,32,48,64,96,128,192,256,512",
        "repeats": 3,
        "cold_repeats": 3,
        "pass_budget_s": 20.0,
        "min_queries": 100,
        "timeout_s": 3 * 3600,
    },
}


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory and OS of this machine (load is recorded per system)."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "cpu_model": cpu,
        "logical_cores": os.cpu_count(),
        "mem_total_bytes": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "env": {
            k: os.environ[k]
            for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
            if k in os.environ
        },
    }


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def git_dirty(paths: tuple[str, ...] = ("src",)) -> list[str]:
    """Uncommitted changes under ``paths`` (the measured code may differ from the commit)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", *paths],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return [line for line in out.stdout.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError):
        return ["unknown"]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "uncommitted"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def run_system(
    s: systems.System,
    mode: str,
    data_dir: Path,
    out_dir: Path,
    run_id: str,
    store_root: Path,
    settings: dict[str, Any],
    project_env_only: bool = False,
) -> dict[str, Any]:
    """Run one system's runner and return (and write) its result."""
    out_json = out_dir / f"{s.name}.json"
    log_path = out_dir / f"{s.name}.log"
    base: dict[str, Any] = {
        "system": s.name,
        "label": s.label,
        "mode": mode,
        "embedded_db": s.embedded_db,
        "run_id": run_id,
    }
    py = systems.interpreter(s, project_env_only)
    if py is None:
        result = {
            **base,
            "status": "not set up",
            "error": f"no environment bench/.venvs/{s.venv} (run: python -m bench setup)",
        }
        out_json.write_text(json.dumps(result, indent=1))
        return result
    store = store_root / s.name
    shutil.rmtree(store, ignore_errors=True)
    cmd = [
        py,
        str(systems.RUNNERS / s.runner),
        "--data",
        str(data_dir),
        "--store",
        str(store),
        "--out",
        str(out_json),
        "--mode",
        mode,
        "--efs",
        settings["efs"],
        "--repeats",
        str(settings["repeats"]),
        "--cold-repeats",
        str(settings["cold_repeats"]),
        "--pass-budget-s",
        str(settings["pass_budget_s"]),
        "--min-queries",
        str(settings["min_queries"]),
        *s.runner_args,
    ]
    out_json.unlink(missing_ok=True)
    load_before, t0 = loadavg(), time.time()
    print(f"== {s.name} ({mode}) with {py}", flush=True)
    error = None
    with open(log_path, "w") as log:
        try:
            proc = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, timeout=settings["timeout_s"], cwd=REPO
            )
            if proc.returncode != 0:
                error = f"runner exited with status {proc.returncode}"
        except subprocess.TimeoutExpired:
            error = f"runner timed out after {settings['timeout_s']} s"
    run = {
        "run_id": run_id,
        "started": datetime.fromtimestamp(t0, UTC).isoformat(),
        "wall_s": time.time() - t0,
        "load_before": load_before,
        "load_after": loadavg(),
        "interpreter": py,
        "fallback_to_project_env": s.venv is not None and py == sys.executable,
    }
    try:
        result = json.loads(out_json.read_text())
    except (OSError, ValueError):
        result = {"status": "failed"}
    if error and result.get("status") == "ok":
        result["status"] = "failed"
    if result.get("status") != "ok":
        tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
        result["error"] = result.get("error") or error or "no result written"
        result["log_tail"] = tail
    result.update(base)
    result["run"] = run
    out_json.write_text(json.dumps(result, indent=1))
    shutil.rmtree(store, ignore_errors=True)
    print(
        f"   {s.name}: {result['status']} in {run['wall_s']:.0f} s"
        + (f" ({result.get('error')})" if result["status"] != "ok" else ""),
        flush=True,
    )
    return result


def run(
    mode: str,
    names: list[str] | None = None,
    out_dir: Path | None = None,
    project_env_only: bool = False,
) -> Path:
    """Run ``names`` (default: all systems) in ``mode``; return the results directory.

    ``project_env_only`` ignores the peers' environments: systems that can fall back to the
    project's interpreter use it, the others are reported "not set up" (the smoke test).
    """
    settings = MODES[mode]
    # The machine is shared: OpenMP threads that spin while waiting make every faiss-based
    # system (raw faiss, KeelDB, Milvus Lite) collapse under load. Passive waiting, set the
    # same for all runners, measures the systems rather than the spinning; recorded below.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    chosen = [systems.BY_NAME[n] for n in names] if names else list(systems.SYSTEMS)
    chosen = [s for s in chosen if mode == "full" or not s.full_only]
    out_dir = out_dir or RESULTS / mode
    out_dir.mkdir(parents=True, exist_ok=True)
    data_dir = data.prepare(mode)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    info = {
        "run_id": run_id,
        "mode": mode,
        "date": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "git_commit": git_commit(),
        "git_dirty_src": git_dirty(),
        "settings": settings,
        "data": json.loads((data_dir / "filters.json").read_text()),
        "systems": [s.name for s in chosen],
        "load_before": loadavg(),
    }
    info_path = out_dir / f"run-{run_id}.json"
    info_path.write_text(json.dumps(info, indent=1))  # rewritten with the end state below
    store_root = Path(tempfile.mkdtemp(prefix="keeldb-bench-", dir=REPO / "bench" / ".work"))
    try:
        for s in chosen:
            run_system(s, mode, data_dir, out_dir, run_id, store_root, settings, project_env_only)
    finally:
        shutil.rmtree(store_root, ignore_errors=True)
    info["load_after"] = loadavg()
    info["finished"] = datetime.now(UTC).isoformat()
    info_path.write_text(json.dumps(info, indent=1))
    return out_dir
