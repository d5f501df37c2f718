"""Document filters on SciFact (5,183 abstracts, ~7.6 MB of text): the cost of a
``$contains`` / ``$text`` mask per unit, memtable and sealed segment, against same-run
baselines (a metadata filter's mask, and a plain Python ``needle in doc`` loop over the
same documents).

Reads ``../shared/datasets/scifact`` (not in CI). Each filter is a fresh one per run (a
unique needle) so the segment's filter cache cannot answer it. Usage:
``python bench/doc_filters.py``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import keeldb  # noqa: E402
from text_eval import SHARED, load_scifact  # noqa: E402

NEEDLES = ["cell", "protein", "microbial cheater", "zzqx", "e"]
TERMS = ["cell", "protein expression", "microbial cheater", "zzqx"]


def _time(fn: Any, reps: int = 5) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _units(col: keeldb.Collection, texts: list[str], label: str) -> None:
    units = col._state.units()
    unit = max(units, key=lambda u: u.rows)
    n = unit.rows
    print(f"\n{label}: one unit of {n} rows")
    fresh = [0]

    def run_meta() -> None:
        fresh[0] += 1  # a fresh filter each time, as below
        col.count({"$or": [{"year": {"$gte": 5}}, {"nope": fresh[0]}]})

    base = _time(run_meta)
    print(f"  metadata filter count(): {base * 1e3:8.2f} ms (baseline)")
    for needle in NEEDLES:
        py = _time(lambda needle=needle: sum(needle in t for t in texts), 3)

        def run(needle: str = needle, salt: list[int] = [0]) -> None:  # noqa: B006
            salt[0] += 1  # a fresh filter each time: never a cached mask
            col.count({"$or": [{"$contains": needle}, {"nope": salt[0]}]})

        ours = _time(run)
        print(
            f"  $contains {needle!r:22} {ours * 1e3:8.2f} ms   python loop {py * 1e3:8.2f} ms"
            f"   ratio {py / ours:5.2f}x   ({ours / base:6.1f}x the metadata filter)"
        )
    for query in TERMS:

        def run_text(query: str = query, salt: list[int] = [0]) -> None:  # noqa: B006
            salt[0] += 1
            col.count({"$or": [{"$text": query}, {"nope": salt[0]}]})

        ours = _time(run_text)
        print(
            f"  $text     {query!r:22} {ours * 1e3:8.2f} ms   "
            f"({ours / base:6.1f}x the metadata filter)"
        )


def main() -> None:
    data = load_scifact(SHARED / "scifact")
    ids, texts, vecs = data["ids"], data["texts"], data["doc_vecs"]
    metas = [{"year": i % 10} for i in range(len(ids))]
    print(f"SciFact: {len(ids)} documents, {sum(map(len, texts)) / 1e6:.1f} M characters")
    with tempfile.TemporaryDirectory() as d:
        opts = {"memtable_rows": 10**6, "durability": "none"}
        with keeldb.open(d, **opts) as db:
            col = db.create_collection("s", dim=vecs.shape[1])
            for s in range(0, len(ids), 1000):
                sl = slice(s, s + 1000)
                col.upsert(ids[sl], np.asarray(vecs[sl]), metas[sl], documents=texts[sl])
            _units(col, texts, "memtable")
            col.compact()
            _units(col, texts, "sealed segment")


if __name__ == "__main__":
    main()
