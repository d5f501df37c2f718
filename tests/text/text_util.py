"""Helpers shared by the text tests (imported by name: conftest.py puts this directory
on sys.path, as tests/reliability does)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from keeldb.text import MemPostings, SealedPostings
from keeldb.text.kernels import kernels


def on_both_paths(module: ModuleType) -> Any:
    """An autouse fixture running every test of a file twice: with the compiled kernels
    and with ``module``'s numpy fallback (its ``kernels`` patched to return None)."""

    @pytest.fixture(autouse=True, params=["compiled", "numpy"])
    def path(request: Any, monkeypatch: Any) -> str:
        if request.param == "numpy":
            monkeypatch.setattr(module, "kernels", lambda: None)
        elif kernels() is None:
            pytest.fail("numba is a dependency: the compiled kernels must load")
        return str(request.param)

    return path


def split_units(docs: list[list[str]], cut: int) -> tuple[SealedPostings, MemPostings]:
    """A sealed unit for docs[:cut] and a memtable for the rest (appended in batches)."""
    sealed = SealedPostings.build(docs[:cut])
    mem = MemPostings()
    rest = docs[cut:]
    for s in range(0, len(rest), 7):
        mem.append(rest[s : s + 7])
    return sealed, mem
