"""Kill -9 soak test (after RocksDB's db_crashtest and Qdrant's crasher).

A writer process upserts, deletes, commits transactions and compacts (durability
``fsync``, background maintenance on, a reader thread searching meanwhile) and appends the
number of every acknowledged batch to an ack log. The driver kills it with SIGKILL at a
random moment, reopens the database and checks it against a model rebuilt from the same
seeded workload: every acknowledged batch present and exact (vectors bit for bit,
metadata and documents equal), the batch in flight entirely present or entirely absent,
nothing else, no error on open, and ``keeldb.check`` clean. Documents carry a word unique
to their row; one ``text_search`` for the words of every live document and of documents
deleted, replaced or lost in flight must find exactly the live records holding them (every
acknowledged document found, no deleted one). The database carries over from trial to
trial, so later trials recover from states earlier kills left behind.

Usage::

    python bench/soak.py [--trials 200] [--seed 1] [--dir DIR] [--json]

Exit status 0 only if every trial verified with zero lost or damaged records.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import Any

# Who started this process, read before anything slow (numpy and keeldb take over a second
# to import and open on a busy machine): a writer compares it with its parent later, and a
# driver that died during that start-up was missed when the parent was read only after it.
_PARENT_AT_START = os.getppid()

import numpy as np  # noqa: E402

DIM = 16
ID_SPACE = 3000
OPTIONS: dict[str, Any] = {"memtable_rows": 300, "hnsw_min_rows": 600}

Batch = list[tuple[str, Any]]
COMMON = ("alpha", "beta", "gamma")
RECENT_BATCHES = 300  # whose documents' words each trial's text check also looks for
Model = dict[str, tuple[np.ndarray, dict[str, Any], str | None]]  # vector, metadata, document


# --- the workload (deterministic from the seed: the driver regenerates it) ----------------


class Workload:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.index = 0

    def _ids(self, n: int) -> list[str]:
        return [f"r{int(i):05d}" for i in self.rng.choice(ID_SPACE, size=n, replace=False)]

    def _upsert(self, n: int) -> tuple[str, Any]:
        ids = self._ids(n)
        vectors = self.rng.normal(size=(n, DIM)).astype(np.float32)
        docs: list[str | None] | None = None  # None keeps existing documents
        if self.rng.random() < 0.8:
            docs = [f"w{self.index}x{i} {COMMON[i % len(COMMON)]}" for i in range(n)]
            if self.rng.random() < 0.2:
                docs[0] = None  # keeps that record's document
        if self.rng.random() < 0.3:
            return ("upsert", (ids, vectors, None, docs))  # keeps existing metadata
        metas = [{"batch": self.index, "row": i, "even": i % 2 == 0} for i in range(n)]
        return ("upsert", (ids, vectors, metas, docs))

    def next(self) -> tuple[Batch, bool]:
        """The next batch and whether to compact after it."""
        r = self.rng.random()
        if r < 0.6:
            batch = [self._upsert(int(self.rng.integers(1, 60)))]
        elif r < 0.8:
            batch = [("delete", self._ids(int(self.rng.integers(1, 40))))]
        else:
            batch = [
                self._upsert(int(self.rng.integers(1, 20))),
                ("delete", self._ids(int(self.rng.integers(1, 10)))),
                self._upsert(int(self.rng.integers(1, 20))),
            ]
        compact = bool(self.rng.random() < 0.04)
        self.index += 1
        return batch, compact


# --- the model -----------------------------------------------------------------------------


def apply(model: Model, batch: Batch) -> None:
    from keeldb.engine.validation import validate_vectors

    for kind, args in batch:
        if kind == "delete":
            for id_ in args:
                model.pop(id_, None)
            continue
        ids, vectors, metas, docs = args
        stored = validate_vectors(vectors, len(ids), DIM, "cosine")  # the engine's normalisation
        for i, id_ in enumerate(ids):
            meta = None if metas is None else metas[i]
            if meta is None:
                meta = model[id_][1] if id_ in model else {}
            doc = None if docs is None else docs[i]
            if doc is None:
                doc = model[id_][2] if id_ in model else None
            model[id_] = (stored[i].copy(), meta, doc)


def unique_words(batch: Batch) -> set[str]:
    """The row-unique words of the documents ``batch`` writes."""
    out: set[str] = set()
    for kind, args in batch:
        if kind == "upsert" and args[3] is not None:
            out.update(d.split()[0] for d in args[3] if d is not None)
    return out


def text_problems(col: Any, model: Model, words: set[str]) -> list[str]:
    """One ``text_search`` for ``words`` (row-unique words of documents written so far:
    live, deleted, replaced or lost in flight) must find exactly the live records of
    ``model`` whose document holds one of them."""
    if not words:
        return []
    expected = {i for i, (_, _, d) in model.items() if d is not None and d.split()[0] in words}
    hits = col.text_search(" ".join(sorted(words)), k=len(expected) + 10, with_documents=False)
    found = {h.id for h in hits}
    if found == expected:
        return []
    missing, extra = sorted(expected - found)[:5], sorted(found - expected)[:5]
    return [f"text_search: acknowledged documents not found {missing}; found {extra}"]


def read_all(col: Any) -> Model:
    out: Model = {}
    cursor = None
    while True:
        page = col.scan(limit=1000, cursor=cursor)
        for r in page.records:
            if r.id in out:
                raise AssertionError(f"scan returned {r.id} twice")
            out[r.id] = (r.vector, r.metadata, r.document)
        cursor = page.next_cursor
        if cursor is None:
            return out


def compare(actual: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Ids that are missing, unexpected or different (empty: equal)."""
    bad = sorted(set(expected) ^ set(actual))
    for id_ in set(expected) & set(actual):
        ev, em, ed = expected[id_]
        av, am, ad = actual[id_]
        if not np.array_equal(ev, av) or em != am or ed != ad:
            bad.append(id_)
    return bad


def _describe(id_: str, actual: Model, model: Model, pending: Model) -> str:
    def state(d: dict[str, Any]) -> str:
        if id_ not in d:
            return "absent"
        vec, meta, doc = d[id_]
        return f"{meta} {doc!r} v0={float(vec[0]):.6f}"

    found, acked, flight = state(actual), state(model), state(pending)
    return f"{id_}: found {found}; acknowledged {acked}; with in-flight {flight}"


# --- the writer process ------------------------------------------------------------------------


def writer(path: str, seed: int, start: int, ack_log: str) -> None:
    import keeldb

    wl = Workload(seed)
    for _ in range(start):
        wl.next()
    fd = os.open(ack_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    db = keeldb.open(path, durability="fsync", **OPTIONS)
    col = db.create_collection("soak", DIM, "cosine", exist_ok=True)
    stop = threading.Event()

    def reader() -> None:  # searches and scans alongside the writes and compactions
        rng = np.random.default_rng(seed + start)
        while not stop.is_set():
            col.search(rng.normal(size=DIM).astype(np.float32), k=10)
            col.count()
            time.sleep(0.002)

    threading.Thread(target=reader, daemon=True).start()
    os.write(fd, b"ready\n")
    parent = _PARENT_AT_START
    i = start
    while True:
        if os.getppid() != parent:
            # The driver is gone (killed, or its test timed out) and will never kill this
            # writer: stop instead of writing forever.
            os._exit(3)
        batch, compact = wl.next()
        if len(batch) == 1:
            kind, args = batch[0]
            if kind == "upsert":
                col.upsert(*args[:3], documents=args[3])
            else:
                col.delete(args)
        else:
            with col.transaction() as tx:
                for kind, args in batch:
                    if kind == "upsert":
                        tx.upsert(*args[:3], documents=args[3])
                    else:
                        tx.delete(args)
        os.write(fd, f"{i}\n".encode())  # acknowledged
        i += 1
        if compact:
            col.compact()


# --- the driver -----------------------------------------------------------------------------


def _acked(ack_log: str) -> tuple[bool, list[int]]:
    with open(ack_log, "rb") as f:
        lines = f.read().split(b"\n")[:-1]  # a line cut by the kill has no newline
    ready = bool(lines) and lines[0] == b"ready"
    return ready, [int(x) for x in lines[1:]]


def run(
    trials: int, seed: int, directory: str, *, max_wait_s: float = 2.0, quiet: bool = False
) -> dict[str, Any]:
    import keeldb

    path = os.path.join(directory, "db")
    rng = random.Random(seed)
    wl = Workload(seed)
    model: Model = {}
    recent_words: deque[set[str]] = deque(maxlen=RECENT_BATCHES)  # row-unique words
    applied = 0  # batches known to be in the database
    pending: Batch | None = None  # the next batch of the workload (generated, not applied)
    totals = {
        "trials": 0,
        "acknowledged_batches": 0,
        "in_flight_applied": 0,
        "in_flight_absent": 0,
        "lost_or_damaged_records": 0,
        "failures": [],
        "open_errors": 0,
        "check_problems": 0,
    }
    t0 = time.perf_counter()
    for trial in range(trials):
        ack_log = os.path.join(directory, f"acks-{trial}.log")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--writer",
                path,
                str(seed),
                str(applied),
                ack_log,
            ],
            env=env,
            stderr=subprocess.PIPE,
        )
        # Wait until the writer is up, then kill it at a random moment.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if os.path.exists(ack_log) and _acked(ack_log)[0]:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, max_wait_s))
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"trial {trial}: writer exited early ({proc.returncode}):\n{err}")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr:
            proc.stderr.close()
        _, acks = _acked(ack_log)
        if acks != list(range(applied, applied + len(acks))):
            raise RuntimeError(f"trial {trial}: ack log out of order: {acks[:5]}...")
        for _ in acks:
            batch, _c = wl.next() if pending is None else (pending, False)
            if pending is None:
                recent_words.append(unique_words(batch))
            pending = None
            apply(model, batch)
        applied += len(acks)
        totals["acknowledged_batches"] += len(acks)
        if pending is None:
            pending, _c = wl.next()
            recent_words.append(unique_words(pending))
        with_pending = dict(model)
        apply(with_pending, pending)
        try:
            db = keeldb.open(path, **OPTIONS)
        except Exception as exc:  # must not happen: reported as a failure
            totals["open_errors"] += 1
            totals["failures"].append(f"trial {trial}: open failed: {exc!r}")
            break
        try:
            names = [c.name for c in db.list_collections()]
            col = db.get_collection("soak") if "soak" in names else None
            actual = read_all(col) if col is not None else {}
            if not compare(actual, model):
                totals["in_flight_absent"] += 1
            elif not compare(actual, with_pending):
                totals["in_flight_applied"] += 1
                model = with_pending
                applied += 1
                pending = None
            else:
                bad = compare(actual, model)
                totals["lost_or_damaged_records"] += len(bad)
                detail = [_describe(id_, actual, model, with_pending) for id_ in bad[:5]]
                totals["failures"].append(f"trial {trial}: {len(bad)} records differ: {detail}")
                break
            # Words of live documents, and of the last batches' documents (deleted,
            # replaced or lost in flight since): exactly the live holders are found.
            words = {d.split()[0] for _, _, d in model.values() if d is not None}
            words |= set().union(*recent_words)
            text = text_problems(col, model, words) if col is not None else []
            if text:
                totals["lost_or_damaged_records"] += 1
                totals["failures"].append(f"trial {trial}: {text}")
                break
        finally:
            db.close()
        report = keeldb.check(path)
        if not report.ok:
            totals["check_problems"] += len(report.problems)
            totals["failures"].append(f"trial {trial}: check: {report.problems[:3]}")
            break
        totals["trials"] += 1
        if not quiet:
            print(
                f"trial {trial + 1}/{trials}: {len(acks)} batches acknowledged, "
                f"{len(model)} records, ok",
                flush=True,
            )
        os.remove(ack_log)
    totals["records_at_end"] = len(model)
    totals["seconds"] = round(time.perf_counter() - t0, 1)
    return totals


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--writer":
        writer(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None, help="work directory (default: a new temp dir)")
    parser.add_argument("--max-wait", type=float, default=2.0, help="longest run before a kill (s)")
    parser.add_argument("--json", action="store_true", help="print the totals as JSON")
    args = parser.parse_args()
    directory = args.dir or tempfile.mkdtemp(prefix="keeldb-soak-")
    os.makedirs(directory, exist_ok=True)
    try:
        totals = run(args.trials, args.seed, directory, max_wait_s=args.max_wait, quiet=args.json)
    finally:
        if args.dir is None:
            shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(totals))
    else:
        print(json.dumps(totals, indent=2))
    ok = not totals["failures"] and totals["trials"] == args.trials
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
