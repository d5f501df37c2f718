"""KeelDB demo: build a collection from real embeddings, search it, filter it, reopen it.

Run with ``make demo`` (or ``python examples/demo.py [DATA_DIR]``). Uses the sample in
``examples/data``: 3,000 PyPI package summaries embedded with all-MiniLM-L6-v2 (384-d).

Without ``DATA_DIR`` the database lives in a temporary directory removed at the end. A
``DATA_DIR`` is kept afterwards; it must be new, empty, or one an earlier demo run
created (marked by a ``KEELDB-DEMO.txt`` file and holding nothing but the demo's
database), which is cleared first. Anything else is refused: the demo never deletes a
directory holding other files.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import keeldb

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


def load_sample() -> tuple[np.ndarray, list[dict], np.ndarray, list[dict]]:
    z = np.load(os.path.join(DATA, "pypi_sample.npz"))
    with gzip.open(os.path.join(DATA, "pypi_sample_meta.jsonl.gz"), "rt") as f:
        meta = [json.loads(line) for line in f]
    with gzip.open(os.path.join(DATA, "pypi_sample_queries.jsonl.gz"), "rt") as f:
        qmeta = [json.loads(line) for line in f]
    return z["vectors"].astype(np.float32), meta, z["queries"].astype(np.float32), qmeta


MARKER = "KEELDB-DEMO.txt"
MARKER_TEXT = (
    "Created by KeelDB's examples/demo.py. Running the demo again with this directory\n"
    "deletes and recreates it, as long as it holds nothing but the demo's database.\n"
)
# What the demo's own database directory may hold: its marker, the database's top-level
# files, and the one collection the demo creates (plus the engine's temporary names).
_DEMO_TOP = {MARKER, "KEELDB", "LOCK", "workspaces"}


def _refuse(path: str, why: str) -> None:
    print(
        f"demo: refusing to use {path}: {why}. Give a new or empty directory (or none, "
        "for a temporary one); the demo deletes only a directory it created itself.",
        file=sys.stderr,
    )
    raise SystemExit(2)


def _only_the_demo_database(path: str) -> bool:
    """True when ``path`` holds nothing but what an earlier demo run wrote there."""
    if not set(os.listdir(path)) <= _DEMO_TOP:
        return False
    root = os.path.join(path, "workspaces")
    if not os.path.exists(root):
        return True
    if os.path.islink(root) or not set(os.listdir(root)) <= {"default"}:
        return False
    default = os.path.join(root, "default")
    if not os.path.exists(default):
        return True
    return not os.path.islink(default) and all(
        name == "packages" or name.startswith((".creating-", ".trash-"))
        for name in os.listdir(default)
    )


def prepare_target(path: str) -> None:
    """Make ``path`` a fresh, marked directory for the demo's database, or exit with
    status 2 (and a message) when it holds anything the demo did not create."""
    if os.path.islink(path):
        _refuse(path, "it is a symbolic link")
    if os.path.exists(path):
        if not os.path.isdir(path):
            _refuse(path, "it is not a directory")
        entries = os.listdir(path)
        if entries:
            if MARKER not in entries:
                _refuse(path, f"it is not empty and not a demo directory (no {MARKER})")
            if not _only_the_demo_database(path):
                _refuse(path, "it holds files besides the demo's database")
            shutil.rmtree(path)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, MARKER), "w", encoding="utf-8") as f:
        f.write(MARKER_TEXT)


def show(title: str, hits: list[keeldb.Hit], seconds: float) -> None:
    print(f"\n  {title}  ({seconds * 1000:.2f} ms)")
    for h in hits:
        m = h.metadata
        print(f"    {h.distance:.3f}  {m['name']:<28.28} {m.get('year')!s:>4}  {m['text'][:60]}")


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else None
    path = target or tempfile.mkdtemp(prefix="keeldb-demo-")
    if target:
        prepare_target(target)
    vectors, meta, queries, qmeta = load_sample()
    print(f"KeelDB {keeldb.__version__} demo — database at {path}")
    print(f"sample: {len(vectors)} PyPI summaries, {vectors.shape[1]}-d MiniLM embeddings")

    # Small thresholds so that this small sample exercises sealing and HNSW like a big one.
    with keeldb.open(path, durability="fsync", memtable_rows=1000, hnsw_min_rows=1500) as db:
        col = db.create_collection("packages", dim=vectors.shape[1], metric="cosine")
        ids = [f"{m['name']}@{m['version']}" for m in meta]
        t0 = time.perf_counter()
        for i in range(0, len(ids), 500):
            col.upsert(ids[i : i + 500], vectors[i : i + 500], meta[i : i + 500])
        t_ingest = time.perf_counter() - t0
        print(
            f"\ningested {col.count()} records in {t_ingest:.2f} s "
            f"({col.count() / t_ingest:,.0f} vectors/s, each batch fsynced)"
        )
        report = col.compact()
        st = col.stats()
        print(
            f"compacted in {report.duration_s:.2f} s -> index {st.index_type}, segments "
            f"{[(s.kind, s.rows) for s in st.segments if s.rows]}, "
            f"disk {st.disk_bytes / 1e6:.1f} MB"
        )

        for qi in (0, 1, 2):
            t = time.perf_counter()
            hits = col.search(queries[qi], k=5)
            show(f"query: {qmeta[qi]['text'][:70]!r}", hits, time.perf_counter() - t)

        q = queries[3]
        print(f"\nquery: {qmeta[3]['text'][:70]!r}")
        for title, flt in (
            ("filter year == 2024", {"year": 2024}),
            ("filter 2019 <= year <= 2021", {"year": {"$gte": 2019, "$lte": 2021}}),
            ("filter rank is not null (popular packages)", {"rank": {"$ne": None}}),
        ):
            t = time.perf_counter()
            hits = col.search(q, k=5, filter=flt)
            show(title, hits, time.perf_counter() - t)
            print(f"    ({col.count(filter=flt)} records match)")

        t = time.perf_counter()
        batch = col.search_batch(queries, k=10)
        dt = time.perf_counter() - t
        print(
            f"\nsearch_batch of {len(batch)} queries: {dt * 1000:.1f} ms "
            f"({len(batch) / dt:,.0f} queries/s)"
        )

        t = time.perf_counter()
        truth = col.search_batch(queries, k=10, exact=True)
        dt = time.perf_counter() - t
        found = sum(
            len({h.id for h in a} & {h.id for h in b}) for a, b in zip(batch, truth, strict=True)
        )
        print(
            f"exact=True batch (every record compared): {dt * 1000:.1f} ms; "
            f"HNSW recall@10 against it: {found / (10 * len(truth)):.3f}"
        )

        gone = col.delete(filter={"year": {"$lt": 2010}})
        print(f"deleted {gone} records from before 2010; {col.count()} remain")

    t = time.perf_counter()
    with keeldb.open(path) as db:
        col = db.get_collection("packages")
        hits = col.search(queries[0], k=3)
        print(
            f"\nreopened and searched in {(time.perf_counter() - t) * 1000:.1f} ms: "
            f"{col.count()} records, top hit {hits[0].id}"
        )
    report = keeldb.check(path)
    print(
        f"keeldb.check: {'ok' if report.ok else 'PROBLEMS'} ({report.files_checked} files verified)"
    )
    if not target:
        shutil.rmtree(path)


if __name__ == "__main__":
    main()
