"""Helpers for the reliability tests: a model of what a collection must contain, a strict
verifier, a deterministic workload, and the crash-loop driver."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import keeldb
from keeldb.engine.validation import validate_vectors
from keeldb.storage.faults import Fault, FaultyFileSystem, SimulatedCrash

DIM = 8
# Small thresholds so that a few hundred rows exercise sealing, merging and HNSW.
SMALL = {"memtable_rows": 50, "hnsw_min_rows": 100, "background": False}

Records = dict[str, tuple[np.ndarray, dict[str, Any], str | None]]  # vector, metadata, document


@dataclass
class Model:
    """The records a collection must hold: id -> (vector as stored, metadata, document)."""

    metric: str = "l2"
    dim: int = DIM
    records: Records = field(default_factory=dict)
    # every row-unique document word ("u...") ever written, live or not
    written: set[str] = field(default_factory=set)

    def copy(self) -> Model:
        return Model(self.metric, self.dim, dict(self.records), set(self.written))

    def upsert(
        self,
        ids: list[str],
        vectors: np.ndarray,
        metadata: list[dict[str, Any] | None] | None,
        documents: list[str | None] | None = None,
    ) -> None:
        # The same normalisation the engine applies (cosine: unit length, float32).
        stored = validate_vectors(vectors, len(ids), self.dim, self.metric)
        metas = metadata if metadata is not None else [None] * len(ids)
        docs = documents if documents is not None else [None] * len(ids)
        for i, id_ in enumerate(ids):
            meta = metas[i]
            old = self.records.get(id_)
            if meta is None:
                meta = old[1] if old is not None else {}
            doc = docs[i]
            if doc is not None:
                self.written.update(w for w in doc.split() if w.startswith("u"))
            if doc is None and old is not None:
                doc = old[2]
            self.records[id_] = (stored[i].copy(), dict(meta), doc)

    def delete(self, ids: list[str]) -> None:
        for id_ in ids:
            self.records.pop(id_, None)

    def apply(self, batch: list[tuple[str, Any]]) -> None:
        for kind, args in batch:
            if kind == "upsert":
                self.upsert(*args)
            else:
                self.delete(args)


def read_all(col: keeldb.Collection) -> Records:
    """Every live record, through ``scan`` (and cross-checked with ``get``)."""
    out: Records = {}
    cursor = None
    while True:
        page = col.scan(limit=97, cursor=cursor)
        for r in page.records:
            assert r.id not in out, f"scan returned {r.id} twice"
            out[r.id] = (np.asarray(r.vector), r.metadata, r.document)
        cursor = page.next_cursor
        if cursor is None:
            break
    if out:
        got = col.get(list(out))
        for rec in got:
            assert rec is not None
            assert np.array_equal(rec.vector, out[rec.id][0]), f"get and scan disagree on {rec.id}"
    return out


def diff(actual: Records, expected: Records) -> str | None:
    """None if equal, else a short description of the first differences."""
    problems: list[str] = []
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"missing {len(missing)}: {missing[:5]}")
    if extra:
        problems.append(f"unexpected {len(extra)}: {extra[:5]}")
    for id_ in sorted(set(actual) & set(expected)):
        av, am, ad = actual[id_]
        ev, em, ed = expected[id_]
        if av.dtype != np.float32 or not np.array_equal(av, ev):
            problems.append(f"vector of {id_} differs")
        if am != em:
            problems.append(f"metadata of {id_} differs: {am!r} != {em!r}")
        if ad != ed:
            problems.append(f"document of {id_} differs: {ad!r} != {ed!r}")
        if len(problems) > 8:
            break
    return "; ".join(problems) if problems else None


def verify(col: keeldb.Collection, candidates: list[Model], context: str = "") -> int:
    """Assert the collection equals exactly one of ``candidates`` (the acknowledged state,
    then that state plus each unacknowledged batch in order); return its index.

    Also checks ``count`` and that an exact search finds stored records.
    """
    actual = read_all(col)
    reasons = []
    for i, model in enumerate(candidates):
        why = diff(actual, model.records)
        if why is None:
            assert col.count() == len(actual), (
                f"{context}: count() {col.count()} != {len(actual)} records"
            )
            _check_search(col, model)
            return i
        reasons.append(f"candidate {i}: {why}")
    raise AssertionError(
        f"{context}: collection matches no allowed state:\n  " + "\n  ".join(reasons)
    )


def _check_text(col: keeldb.Collection, model: Model) -> None:
    """Every document's unique word finds exactly the live records whose document has it
    (an acknowledged document is found; a deleted or replaced one is not)."""
    words: dict[str, set[str]] = {}
    for id_, (_, _, doc) in model.records.items():
        for w in (doc or "").split():
            if w.startswith("u"):
                words.setdefault(w, set()).add(id_)
    # Every acknowledged document at once: one query for every unique word ever written
    # finds exactly the live records holding one (none deleted, replaced or lost).
    every = set(words) | model.written
    if every:
        expected = set().union(*words.values()) if words else set()
        hits = col.text_search(" ".join(sorted(every)), k=len(expected) + 10)
        found = {h.id for h in hits}
        assert found == expected, (
            f"text_search for every written word: missing {sorted(expected - found)[:5]}, "
            f"unexpected {sorted(found - expected)[:5]}"
        )
    for w in sorted(words)[:: max(1, len(words) // 6)][:6]:
        found = {h.id for h in col.text_search(w, k=50)}
        assert found == words[w], f"text_search({w!r}) found {found}, expected {words[w]}"


def _check_search(col: keeldb.Collection, model: Model) -> None:
    _check_text(col, model)
    if not model.records:
        assert col.search(np.ones(model.dim, np.float32), k=3) == []
        return
    ids = sorted(model.records)
    for id_ in ids[:: max(1, len(ids) // 4)][:4]:
        hits = col.search(model.records[id_][0], k=1, ef=200)
        assert hits and hits[0].id == id_ or (hits and hits[0].distance <= 1e-5), (
            f"search for {id_}'s own vector returned {hits}"
        )


class Workload:
    """Deterministic random write batches over a bounded id space (upserts of new and
    existing ids with or without metadata and documents, deletes, multi-op
    transactions)."""

    def __init__(self, seed: int, dim: int = DIM, id_space: int = 400) -> None:
        self.rng = np.random.default_rng(seed)
        self.dim = dim
        self.id_space = id_space
        self.counter = 0

    def _ids(self, n: int) -> list[str]:
        picks = self.rng.choice(self.id_space, size=n, replace=False)
        return [f"id-{int(i):05d}" for i in picks]

    def upsert_args(
        self, n: int
    ) -> tuple[list[str], np.ndarray, list[dict[str, Any] | None] | None, list[str | None] | None]:
        ids = self._ids(n)
        vectors = self.rng.normal(size=(n, self.dim)).astype(np.float32)
        self.counter += 1
        # documents: none, or each a unique word u<batch>x<i> plus common words (None keeps)
        docs: list[str | None] | None = None
        if self.rng.random() < 0.7:
            docs = [
                None if self.rng.random() < 0.2 else f"u{self.counter}x{i} common word{i % 4}"
                for i in range(n)
            ]
        style = self.rng.integers(3)
        if style == 0:
            return ids, vectors, None, docs
        metas: list[dict[str, Any] | None] = []
        for i in range(n):
            if style == 1 and self.rng.random() < 0.3:
                metas.append(None)
            else:
                metas.append(
                    {"b": self.counter, "i": i, "tag": ["x", "y", "z"][i % 3], "f": float(i) / 7}
                )
        return ids, vectors, metas, docs

    def batch(self) -> list[tuple[str, Any]]:
        """One write batch: ``[("upsert", args) | ("delete", ids), ...]``."""
        r = self.rng.random()
        if r < 0.6:
            return [("upsert", self.upsert_args(int(self.rng.integers(1, 30))))]
        if r < 0.8:
            return [("delete", self._ids(int(self.rng.integers(1, 20))))]
        return [
            ("upsert", self.upsert_args(int(self.rng.integers(1, 10)))),
            ("delete", self._ids(int(self.rng.integers(1, 8)))),
            ("upsert", self.upsert_args(int(self.rng.integers(1, 10)))),
        ]


def write_batch(col: keeldb.Collection, batch: list[tuple[str, Any]]) -> None:
    """Send ``batch`` as one call (upsert / delete) or one transaction."""
    if len(batch) == 1:
        kind, args = batch[0]
        if kind == "upsert":
            col.upsert(*args[:3], documents=args[3])
        else:
            col.delete(args)
        return
    with col.transaction() as tx:
        for kind, args in batch:
            if kind == "upsert":
                tx.upsert(*args[:3], documents=args[3])
            else:
                tx.delete(args)


@dataclass
class CrashStats:
    runs: int = 0
    crashes: int = 0
    calls_max: int = 0
    verified: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


# An operation gets (db, collection, acknowledge) and calls acknowledge(batch) after each
# write batch returns; it returns nothing. ``batches`` lists the batches it will send.
Operation = Callable[[keeldb.Database, keeldb.Collection, Callable[[], None]], None]


def abandon(db: keeldb.Database) -> None:
    FaultyFileSystem.abandon(db)


def crash_loop(
    base: str,
    work: str,
    model: Model,
    batches: list[list[tuple[str, Any]]],
    operation: Operation,
    *,
    modes: tuple[str, ...] = ("power", "torn", "process"),
    action: str = "crash",
    options: dict[str, Any] | None = None,
    collection: str = "c",
    max_calls: int = 2000,
    before_open: bool = False,
) -> CrashStats:
    """For N = 1, 2, ...: copy ``base`` to ``work``, open it on a FaultyFileSystem, cut at
    the N-th mutating call of ``operation`` (or of the open itself with ``before_open``),
    reopen on the real file system and verify, until the operation completes untouched.

    ``batches`` are the write batches ``operation`` sends (in order); after a crash the
    collection must equal the model after every acknowledged batch, plus possibly the one
    in flight -- and nothing else.
    """
    opts = dict(SMALL, **(options or {}))
    stats = CrashStats()
    states = [model]
    for b in batches:
        nxt = states[-1].copy()
        nxt.apply(b)
        states.append(nxt)
    for mode in modes:
        n = 0
        while True:
            n += 1
            assert n <= max_calls, "operation did not complete within max_calls"
            if os.path.exists(work):
                shutil.rmtree(work)
            shutil.copytree(base, work)
            fs = FaultyFileSystem(work)
            dbdir = os.path.join(work, "db")
            acked = 0

            def ack() -> None:
                nonlocal acked
                acked += 1

            crashed = False
            db = None
            try:
                if before_open:
                    fs.arm(Fault(nth=n, mode=mode, seed=n, action=action))
                db = keeldb.open(dbdir, fs=fs, **opts)
                col = db.get_collection(collection) if collection else None
                if not before_open:
                    fs.arm(Fault(nth=n, mode=mode, seed=n, action=action))
                operation(db, col, ack)  # type: ignore[arg-type]
                db.close()  # a clean close does I/O too (seal, checkpoint): cut it as well
            except SimulatedCrash:
                crashed = True
            stats.runs += 1
            stats.calls_max = max(stats.calls_max, fs.calls)
            if not crashed:
                assert db is not None
                assert fs.faults_fired == 0, "a fault fired but the operation did not notice"
            else:
                stats.crashes += 1
                if db is not None:
                    abandon(db)
            context = f"mode={mode} N={n} acked={acked} trace_tail={fs.trace[-3:]}"
            with keeldb.open(dbdir, **opts) as db2:
                col2 = db2.get_collection(collection) if collection else None
                if col2 is not None:
                    allowed = states[acked : acked + 2] if crashed else states[-1:]
                    idx = verify(col2, allowed, context)
                    stats.verified += 1
                    key = "in-flight batch applied" if idx else "in-flight batch absent"
                    stats.outcomes[key] = stats.outcomes.get(key, 0) + 1
                    # The recovered collection takes writes and keeps them over a reopen.
                    col2.upsert(["after-crash"], np.ones((1, model.dim), np.float32), [{"ok": 1}])
            report = keeldb.check(dbdir)
            assert report.ok, f"{context}: check after recovery: {report.problems}"
            if collection:
                with keeldb.open(dbdir, **opts) as db3:
                    rec = db3.get_collection(collection).get(["after-crash"])[0]
                    assert rec is not None and rec.metadata == {"ok": 1}, context
            if not crashed:
                break
    return stats
