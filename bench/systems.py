"""The systems the suite compares, their runners and their pinned virtual environments.

Each peer runs in its own virtual environment under ``bench/.venvs/<venv>`` with the
exact versions below, so its dependencies cannot clash with KeelDB's (or each other's).
KeelDB itself runs in the project's environment (the interpreter running the driver).
Bump a pin here deliberately; the environment is rebuilt when its pin list changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RUNNERS = REPO / "bench" / "runners"
VENVS = REPO / "bench" / ".venvs"
NUMPY = "numpy==2.4.6"


@dataclass(frozen=True)
class System:
    """One system under test. ``venv`` None means the project's own interpreter;
    ``fallback_main`` lets quick mode use the project's interpreter when the peer's
    environment was not set up (faiss and hnswlib are project dependencies)."""

    name: str
    label: str
    runner: str
    venv: str | None
    pins: tuple[str, ...] = ()
    embedded_db: bool = False
    fallback_main: bool = False
    runner_args: tuple[str, ...] = ()
    full_only: bool = False


SYSTEMS: tuple[System, ...] = (
    System("keeldb", "KeelDB", "keeldb_runner.py", None),
    System(
        "faiss-hnsw",
        "faiss IndexHNSWFlat",
        "faiss_hnsw.py",
        "faiss",
        ("faiss-cpu==1.15.1", NUMPY),
        fallback_main=True,
    ),
    System(
        "faiss-flat",
        "faiss IndexFlatIP (exact)",
        "faiss_flat.py",
        "faiss",
        ("faiss-cpu==1.15.1", NUMPY),
        fallback_main=True,
    ),
    System(
        "hnswlib",
        "hnswlib",
        "hnswlib_runner.py",
        "hnswlib",
        ("hnswlib==0.8.0", NUMPY),
        fallback_main=True,
    ),
    System(
        "chroma",
        "Chroma (PersistentClient)",
        "chroma_runner.py",
        "chroma",
        ("chromadb==1.5.9", NUMPY),
        embedded_db=True,
    ),
    System(
        "lancedb",
        "LanceDB",
        "lancedb_runner.py",
        "lancedb",
        ("lancedb==0.40.0", "pyarrow==26.0.1", NUMPY),
        embedded_db=True,
    ),
    System(
        "milvus-lite",
        "Milvus Lite",
        "milvus_runner.py",
        "milvus-lite",
        ("pymilvus==3.0.2", "milvus-lite==3.2.2", "faiss-cpu==1.15.1", NUMPY),
        embedded_db=True,
    ),
    System(
        "qdrant-local",
        "Qdrant local mode",
        "qdrant_runner.py",
        "qdrant-local",
        ("qdrant-client==1.20.0", NUMPY),
        embedded_db=True,
    ),
    # KeelDB's 1M-vector cold open: its own process and result file (long build, big disk)
    System(
        "keeldb-1m",
        "KeelDB 1M open",
        "keeldb_runner.py",
        None,
        runner_args=("--cases", "", "--extra", "big_open"),
        full_only=True,
    ),
)
BY_NAME = {s.name: s for s in SYSTEMS}


def venv_python(s: System) -> Path | None:
    return None if s.venv is None else VENVS / s.venv / "bin" / "python"


def _pin_stamp(s: System) -> str:
    return hashlib.sha256("\n".join(s.pins).encode()).hexdigest()[:16]


def is_set_up(s: System) -> bool:
    if s.venv is None:
        return True
    stamp = VENVS / s.venv / ".bench-pins"
    return stamp.exists() and stamp.read_text().strip() == _pin_stamp(s)


def interpreter(s: System, project_env_only: bool = False) -> str | None:
    """The Python to run ``s`` with, or None when its environment is not set up."""
    if s.venv is None:
        return sys.executable
    if is_set_up(s) and not project_env_only:
        return str(venv_python(s))
    return sys.executable if s.fallback_main else None


def set_up(s: System, log: Path | None = None) -> None:
    """Create ``s``'s virtual environment with its pins (no-op when already current)."""
    if s.venv is None or is_set_up(s):
        return
    env_dir = VENVS / s.venv
    VENVS.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env_dir)], check=True)
    pip = [str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q"]
    out = open(log, "a") if log else None  # noqa: SIM115 (closed below)
    try:
        subprocess.run([*pip, *s.pins], check=True, stdout=out, stderr=out)
        freeze = subprocess.run(
            [str(env_dir / "bin" / "python"), "-m", "pip", "freeze"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        if out:
            out.close()
    (env_dir / "requirements.lock").write_text(freeze)
    (env_dir / ".bench-pins").write_text(_pin_stamp(s))
