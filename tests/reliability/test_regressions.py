"""Regression tests for bugs the reliability suite found (one test per bug, named after it)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from reliability_util import SMALL

import keeldb


def _finishes(fn: Callable[[], object], timeout_s: float = 20.0) -> bool:
    done = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    finished = done.wait(timeout_s)
    if errors:
        raise errors[0]
    return finished


def test_inline_maintenance_compact_and_close_do_not_deadlock(tmp_path: Path) -> None:
    """background=False: compact() and close() froze the memtable while holding the
    maintenance lock, and the inline wake-up then waited for that same lock forever."""
    db = keeldb.open(tmp_path / "db", **SMALL)
    col = db.create_collection("c", 8, "l2")
    col.upsert(["a", "b"], np.ones((2, 8), np.float32))
    assert _finishes(col.compact), "compact() deadlocked"
    col.upsert(["c"], np.ones((1, 8), np.float32))
    assert _finishes(db.close), "close() deadlocked"
    with keeldb.open(tmp_path / "db", **SMALL) as db2:
        assert db2.get_collection("c").count() == 3
