"""Benchmark: time to build the filter mask for one condition over 1,000,000 rows.

Standalone (synthetic data, no database): ``.venv/bin/python bench/filter_mask.py``.
The target (docs/filtering.md) is <= 20 ms for one equality or range condition over
1M rows on the 2-core development machine. Also prints the cost of building columns
from Python dicts, of one append batch, and of the payload round trip.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from keeldb.filtering import MetadataColumns, compile_filter

TARGET_MS = 20.0

# (label, filter, counts toward the 20 ms target)
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("eq int (dense)", {"year": 2021}, True),
    ("eq str (dense, 50 values)", {"lang": "lang-07"}, True),
    ("range float (dense)", {"score": {"$gte": 0.25, "$lt": 0.75}}, True),
    ("range int (dense)", {"year": {"$gt": 2015}}, True),
    ("range str (ISO dates)", {"date": {"$gte": "2024-03-01"}}, True),
    ("eq mixed int/float field", {"mixed": 3}, True),
    ("eq sparse path (1%)", {"rare": "x"}, True),
    ("$in 100 ints", {"year": {"$in": list(range(1950, 2050))}}, False),
    ("$contains str (arrays)", {"tags": {"$contains": "t3"}}, False),
    ("$ne str", {"lang": {"$ne": "lang-07"}}, False),
    (
        "$and of 3 + $or",
        {"lang": "lang-01", "year": {"$gte": 2000}, "$or": [{"flag": True}, {"rare": "x"}]},
        False,
    ),
]


def synthetic_rows(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` small metadata dicts with dense, sparse, mixed-type and array fields."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        row: dict[str, Any] = {
            "year": rng.randrange(1950, 2030),
            "lang": f"lang-{rng.randrange(50):02d}",
            "score": rng.random(),
            "date": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "mixed": rng.randrange(10) if i % 2 else rng.randrange(10) + 0.5,
            "flag": i % 3 == 0,
        }
        if i % 10 == 0:
            row["tags"] = [f"t{rng.randrange(20)}" for _ in range(3)]
        if i % 100 == 0:
            row["rare"] = "x"
        rows.append(row)
    return rows


def median_ms(func: Callable[[], object], repeats: int) -> float:
    func()  # warm caches (e.g. the sorted string dictionary)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    start = time.perf_counter()
    rows = synthetic_rows(args.rows)
    print(f"generated {args.rows:,} synthetic rows in {time.perf_counter() - start:.2f} s")

    start = time.perf_counter()
    sample = rows[:100_000]
    MetadataColumns.build(sample)
    print(f"build 100k rows: {(time.perf_counter() - start) * 1e3:.0f} ms")

    start = time.perf_counter()
    columns = MetadataColumns.build(rows)
    print(f"build {args.rows:,} rows: {time.perf_counter() - start:.2f} s")

    growing = MetadataColumns.build(rows[:-1000])
    start = time.perf_counter()
    growing.append(rows[-1000:])
    print(
        f"append 1000 rows onto {len(growing) - 1000:,}: "
        f"{(time.perf_counter() - start) * 1e3:.2f} ms"
    )

    payload = columns.to_bytes()
    load_ms = median_ms(lambda: MetadataColumns.from_bytes(payload), 5)
    print(
        f"payload {len(payload) / 1e6:.1f} MB, from_bytes {load_ms:.2f} ms, "
        f"memory estimate {columns.nbytes / 1e6:.1f} MB"
    )
    loaded = MetadataColumns.from_bytes(payload)

    worst = 0.0
    print(f"\nmask over {len(columns):,} rows (median of {args.repeats}):")
    for label, spec, targeted in CASES:
        f = compile_filter(spec)
        ms = median_ms(partial(f.mask, columns), args.repeats)
        loaded_ms = median_ms(partial(f.mask, loaded), args.repeats)
        hits = int(f.mask(columns).sum())
        mark = "*" if targeted else " "
        print(
            f" {mark} {label:<28} {ms:7.2f} ms  (from payload {loaded_ms:6.2f} ms)  "
            f"{hits:>9,} rows match"
        )
        if targeted:
            worst = max(worst, ms, loaded_ms)
    verdict = "OK" if worst <= TARGET_MS else "OVER TARGET"
    print(
        f"\n* single equality/range conditions: worst {worst:.2f} ms "
        f"(target <= {TARGET_MS:.0f} ms): {verdict}"
    )
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
