"""A search overlapping an upsert that replaces an id never returns that id twice.

Regression: units were searched oldest memtable first. A search that read a frozen
memtable (holding the old row, still live) and then the active memtable (after the
replacing upsert had appended the new row there) returned the record twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

import keeldb


def test_a_record_replaced_mid_search_is_not_returned_twice(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    dim = 4
    target = np.zeros(dim, np.float32)
    with keeldb.open(tmp_path / "db", memtable_rows=10, max_frozen_memtables=4) as db:
        col = db.create_collection("c", dim=dim, metric="l2")
        maintainer = col._maintainer
        assert maintainer is not None
        with maintainer.merge_lock, maintainer.lock:  # sealing waits: memtables stay frozen
            others = (rng.normal(size=(9, dim)) + 5).astype(np.float32)
            col.upsert(["x", *[f"a{i}" for i in range(9)]], np.vstack([target, others]))
            col.upsert(["b0"], (rng.normal(size=(1, dim)) + 5).astype(np.float32))
            state = col.versions.state
            frozen = [m for m in state.memtables if m is not state.active]
            assert frozen and any("x" in m.ids for m in frozen), "x is in a frozen memtable"
            holder = next(m for m in frozen if "x" in m.ids)
            real = holder.search
            replaced: list[bool] = []

            def search_then_replace(*args: Any, **kwargs: Any) -> Any:
                out = real(*args, **kwargs)  # the old row of x was live when read
                if not replaced:
                    replaced.append(True)
                    col.upsert(["x"], target[None, :] + np.float32(0.001))  # a writer, now
                return out

            holder.search = search_then_replace  # type: ignore[method-assign]
            try:
                hits = col.search(target, k=5)
            finally:
                del holder.search
            assert replaced
            ids = [h.id for h in hits]
            assert len(ids) == len(set(ids)), ids
            assert ids[0] == "x"
            # and the next search sees the new version only
            again = col.search(target, k=5)
            assert [h.id for h in again].count("x") == 1
            assert again[0].distance > 0
