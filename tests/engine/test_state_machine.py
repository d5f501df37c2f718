"""Hypothesis state machine: the engine against a plain in-memory model with exact search.

Rules upsert, delete, transact, search, compact and close-and-reopen in any order, with
thresholds so small that memtables seal, segments merge into HNSW and tombstones get
vacuumed within a short run. Searches use ef far above the row count, which makes HNSW
exhaustive on graphs this small, so results must equal the model's exact top k.
"""

from __future__ import annotations

import shutil
import tempfile

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import keeldb

DIM = 4
IDS = st.sampled_from([f"id{i}" for i in range(40)])
VECTOR = st.lists(st.integers(-8, 8), min_size=DIM, max_size=DIM).filter(any)
META = st.one_of(st.none(), st.fixed_dictionaries({"n": st.integers(0, 3)}), st.just({}))


def normalise(v: list[int]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


class EngineVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.path = tempfile.mkdtemp(prefix="keeldb-sm-")
        self.options = {"memtable_rows": 12, "hnsw_min_rows": 20, "background": False}
        self.db = keeldb.open(self.path, **self.options)
        self.col = self.db.create_collection("c", dim=DIM, metric="cosine")
        self.model: dict[str, tuple[np.ndarray, dict]] = {}

    def teardown(self) -> None:
        self.db.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def _apply_upsert(self, ids: list[str], vectors: list[list[int]], metas: list) -> None:
        for id_, v, m in zip(ids, vectors, metas, strict=True):
            old = self.model.get(id_)
            meta = m if m is not None else (old[1] if old else {})
            self.model[id_] = (normalise(v), meta)

    @rule(data=st.data())
    def upsert(self, data: st.DataObject) -> None:
        ids = data.draw(st.lists(IDS, min_size=1, max_size=8, unique=True))
        vectors = data.draw(st.lists(VECTOR, min_size=len(ids), max_size=len(ids)))
        metas = data.draw(st.lists(META, min_size=len(ids), max_size=len(ids)))
        self.col.upsert(ids, np.asarray(vectors, dtype=np.float32), metas)
        self._apply_upsert(ids, vectors, metas)

    @rule(ids=st.lists(IDS, min_size=1, max_size=6))
    def delete(self, ids: list[str]) -> None:
        expected = len({i for i in ids if i in self.model})
        assert self.col.delete(ids) == expected
        for i in ids:
            self.model.pop(i, None)

    @rule(data=st.data(), fail=st.booleans())
    def transact(self, data: st.DataObject, fail: bool) -> None:
        ids = data.draw(st.lists(IDS, min_size=1, max_size=5, unique=True))
        vectors = data.draw(st.lists(VECTOR, min_size=len(ids), max_size=len(ids)))
        gone = data.draw(st.lists(IDS, max_size=3))
        try:
            with self.col.transaction() as tx:
                tx.upsert(ids, np.asarray(vectors, dtype=np.float32), [None] * len(ids))
                tx.delete(gone)
                if fail:
                    raise KeyError("abort")
        except KeyError:
            return
        self._apply_upsert(ids, vectors, [None] * len(ids))
        for i in gone:
            self.model.pop(i, None)

    @rule(vector=VECTOR, k=st.integers(1, 12))
    def search(self, vector: list[int], k: int) -> None:
        q = normalise(vector)
        hits = self.col.search(q, k=k, ef=1024)
        ids = list(self.model)
        if not ids:
            assert hits == []
            return
        base = np.stack([self.model[i][0] for i in ids])
        d = 1.0 - base @ q
        expected = sorted(zip(d.tolist(), ids, strict=True))[:k]
        assert len(hits) == len(expected)
        np.testing.assert_allclose([h.distance for h in hits], [e[0] for e in expected], atol=1e-5)
        for h in hits:
            assert h.metadata == self.model[h.id][1]
            assert abs(h.distance - float(1.0 - self.model[h.id][0] @ q)) < 1e-5

    @rule()
    def compact(self) -> None:
        self.col.compact()
        st_ = self.col.stats()
        assert st_.deleted_count == 0

    @precondition(lambda self: True)
    @rule()
    def reopen(self) -> None:
        self.db.close()
        self.db = keeldb.open(self.path, **self.options)
        self.col = self.db.get_collection("c")
        assert self.col.recovery_report["replayed_records"] == 0

    @invariant()
    def same_records(self) -> None:
        assert self.col.count() == len(self.model)
        ids = sorted(self.model)
        recs = self.col.get(ids)
        for id_, rec in zip(ids, recs, strict=True):
            assert rec is not None and rec.id == id_
            np.testing.assert_allclose(rec.vector, self.model[id_][0], atol=1e-6)
            assert rec.metadata == self.model[id_][1]


EngineVsModel.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestEngineVsModel = EngineVsModel.TestCase
