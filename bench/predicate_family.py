"""Generated filter predicates with their exact match masks, and the data families they
run on (``bench/predicates.py`` times them).

A *family* is a set of typed metadata fields; the generator draws random atoms over them
(equality, ``$ne``, ``$in``, ``$nin``, ranges, ``$exists``) and combines them into
conjunctions, disjunctions and negations, with a fixed seed. Each predicate comes with its
match mask computed here in numpy from the field arrays, independently of KeelDB's filter
engine (the benchmark checks the engine's ``count(filter)`` against it). Predicates are
accepted into selectivity bands (0.1 % - 90 %) and shapes in turn, so a run covers every
band with several shapes; nothing is chosen per predicate after seeing how KeelDB does.

Data families:

* ``pypi``: the pypi-minilm data set (real embeddings; fields ``year`` int, ``month``
  string ``YYYY-MM``, ``rank`` sparse int (1.7 % present), ``version`` string);
* ``clustered``: synthetic Gaussian clusters with fields correlated with the vectors
  (``cluster``, ``group`` and ``score``, a projection: a range on it is near some queries
  and far from others, i.e. anti-correlated for them), uncorrelated ones (``price``,
  ``flag``) and a sparse one (``tier``, 5 % present).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BANDS",
    "Field",
    "Predicate",
    "clustered_family",
    "generate",
    "pypi_family",
]

# Selectivity bands (fractions of rows); each gets PER_BAND predicates.
BANDS: tuple[tuple[float, float], ...] = (
    (0.001, 0.004),
    (0.004, 0.02),
    (0.02, 0.06),
    (0.06, 0.12),
    (0.12, 0.25),
    (0.25, 0.4),
    (0.4, 0.6),
    (0.6, 0.9),
)
PER_BAND = 5
SHAPES = ("atom", "and", "or", "not", "and-or", "and-ne", "nin")


@dataclass
class Field:
    """One metadata field: ``kind`` is ``int``, ``float``, ``str``, ``bool``;
    ``values`` per row (numpy; anything where ``present`` is False), ``present`` the
    rows where the field exists and is not null."""

    name: str
    kind: str
    values: np.ndarray
    present: np.ndarray
    vocab: np.ndarray | None = None  # str fields: sorted strings; values are their codes
    _rows: np.ndarray | None = None

    @classmethod
    def strings(cls, name: str, values: np.ndarray, present: np.ndarray) -> Field:
        """A string field held as codes into its sorted vocabulary (so comparisons of
        codes order as the strings do)."""
        vocab, codes = np.unique(values, return_inverse=True)
        return cls(name, "str", codes.astype(np.int64), present, vocab)

    def present_rows(self) -> np.ndarray:
        if self._rows is None:
            self._rows = np.flatnonzero(self.present)
        return self._rows

    def literal(self, v: Any) -> Any:
        """A value (a code for strings) as a JSON filter literal."""
        if self.vocab is not None:
            return str(self.vocab[int(v)])
        if self.kind == "int":
            return int(v)
        if self.kind == "float":
            return round(float(v), 4)
        if self.kind == "bool":
            return bool(v)
        return str(v)


@dataclass
class Predicate:
    """A generated filter: its spec, exact match mask and shape."""

    name: str
    shape: str
    spec: dict[str, Any]
    mask: np.ndarray

    @property
    def selectivity(self) -> float:
        return float(self.mask.mean())


Atom = tuple[dict[str, Any], np.ndarray]


def _pick(rng: np.random.Generator, f: Field) -> Any:
    """A value of ``f`` drawn from its rows (so common values are common)."""
    rows = f.present_rows()
    return f.values[rows[rng.integers(len(rows))]]


def _eq(f: Field, v: Any) -> np.ndarray:
    return f.present & (f.values == v)


def _atom(rng: np.random.Generator, f: Field, op: str) -> Atom:
    """One condition on ``f`` with operator ``op`` and its mask (docs/filtering.md's
    semantics: ``$ne``/``$nin`` match missing and null, ranges and ``$in`` do not)."""
    if op == "exists":
        want = bool(rng.random() < 0.7)
        return {f.name: {"$exists": want}}, f.present.copy() if want else ~f.present
    if op in ("eq", "ne"):
        v = _pick(rng, f)
        m = _eq(f, v)
        if op == "eq":
            return {f.name: f.literal(v)}, m
        return {f.name: {"$ne": f.literal(v)}}, ~m
    if op in ("in", "nin"):
        vals = sorted({_pick(rng, f) for _ in range(int(rng.integers(2, 6)))})
        m = f.present & np.isin(f.values, np.array(vals, dtype=f.values.dtype))
        lits = [f.literal(v) for v in vals]
        if op == "in":
            return {f.name: {"$in": lits}}, m
        return {f.name: {"$nin": lits}}, ~m
    assert op == "range"
    present_vals = np.sort(f.values[f.present_rows()])
    lo_q, width = rng.random(), rng.choice([0.02, 0.05, 0.1, 0.2, 0.4, 0.7])
    lo = present_vals[int(lo_q * (len(present_vals) - 1))]
    hi = present_vals[int(min(lo_q + width, 1.0) * (len(present_vals) - 1))]
    kind = rng.integers(3)
    if kind == 0:
        spec = {f.name: {"$gte": f.literal(lo), "$lt": f.literal(hi)}}
        m = f.present & (f.values >= lo) & (f.values < hi)
    elif kind == 1:
        spec = {f.name: {"$gt": f.literal(lo)}}
        m = f.present & (f.values > lo)
    else:
        spec = {f.name: {"$lte": f.literal(hi)}}
        m = f.present & (f.values <= hi)
    if f.kind == "float":  # literals are rounded: recompute the mask with them
        m = _range_mask(f, spec[f.name])
    return spec, m


def _range_mask(f: Field, ops: dict[str, Any]) -> np.ndarray:
    m = f.present.copy()
    for op, v in ops.items():
        cmp = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}
        m &= cmp[op](f.values, v)
    return m


def _ops(f: Field) -> list[str]:
    ops = ["eq", "ne", "in", "nin", "range"] if f.kind != "bool" else ["eq", "ne"]
    if not f.present.all():
        ops.append("exists")
    return ops


def _random_atom(
    rng: np.random.Generator, fields: list[Field], ops: list[str] | None = None
) -> Atom:
    f = fields[int(rng.integers(len(fields)))]
    allowed = [o for o in _ops(f) if ops is None or o in ops] or _ops(f)
    return _atom(rng, f, allowed[int(rng.integers(len(allowed)))])


def _and(parts: list[Atom]) -> Atom:
    m = parts[0][1].copy()
    for _, pm in parts[1:]:
        m &= pm
    return {"$and": [p[0] for p in parts]}, m


def _or(parts: list[Atom]) -> Atom:
    m = parts[0][1].copy()
    for _, pm in parts[1:]:
        m |= pm
    return {"$or": [p[0] for p in parts]}, m


def _shape(rng: np.random.Generator, fields: list[Field], shape: str) -> Atom:
    """A random predicate of ``shape``."""
    pos = ["eq", "in", "range", "exists"]
    if shape == "atom":
        return _random_atom(rng, fields, pos)
    if shape == "nin":
        return _random_atom(rng, fields, ["nin", "ne"])
    if shape == "and":
        return _and([_random_atom(rng, fields, pos) for _ in range(int(rng.integers(2, 4)))])
    if shape == "or":
        return _or([_random_atom(rng, fields, pos) for _ in range(int(rng.integers(2, 4)))])
    if shape == "not":
        inner = _shape(rng, fields, ["atom", "and", "or"][int(rng.integers(3))])
        return {"$not": inner[0]}, ~inner[1]
    if shape == "and-ne":
        return _and([_random_atom(rng, fields, pos), _random_atom(rng, fields, ["ne", "nin"])])
    assert shape == "and-or"
    return _and([_random_atom(rng, fields, pos), _shape(rng, fields, "or")])


def generate(fields: list[Field], seed: int, per_band: int = PER_BAND) -> list[Predicate]:
    """``per_band`` predicates per selectivity band of :data:`BANDS`, shapes taken in
    turn (a band accepts the next shape's first candidate that falls in it); fixed
    ``seed``. Raises RuntimeError when a band cannot be filled."""
    rng = np.random.default_rng(seed)
    out: list[Predicate] = []
    for bi, (lo, hi) in enumerate(BANDS):
        got = tries = total = 0
        shape_i = bi  # start each band on another shape so shapes spread over bands
        while got < per_band:
            spec, mask = _shape(rng, fields, SHAPES[shape_i % len(SHAPES)])
            tries += 1
            total += 1
            if lo <= float(mask.mean()) < hi:
                out.append(Predicate(f"p{len(out):02d}", SHAPES[shape_i % len(SHAPES)], spec, mask))
                got += 1
            if got and tries and lo <= float(mask.mean()) < hi or tries > 300:
                shape_i += 1  # next shape (this one was taken, or rarely lands here)
                tries = 0
            if total > 20_000:
                raise RuntimeError(f"cannot fill selectivity band {lo}-{hi}")
    return out


# --- data families --------------------------------------------------------------------------


@dataclass
class Family:
    """Vectors, queries, metadata rows and typed fields of one data family."""

    name: str
    base: np.ndarray  # (n, d) float32, unit rows (cosine)
    queries: np.ndarray
    metadata: list[dict[str, Any]]
    fields: list[Field]


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def pypi_family(dataset: Path, rows: int, queries: int) -> Family:
    """The pypi-minilm set: the first ``rows`` base rows, the first ``queries``."""
    base = _unit(np.load(dataset / "base.f16.npy")[:rows])
    q = _unit(np.load(dataset / "queries.f16.npy")[:queries])
    metas: list[dict[str, Any]] = []
    with gzip.open(dataset / "meta.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            m = json.loads(line)
            metas.append(
                {k: m[k] for k in ("year", "month", "rank", "version") if m.get(k) is not None}
            )
            if len(metas) >= rows:
                break

    def col(key: str, kind: str, fill: Any) -> Field:
        present = np.array([key in m for m in metas])
        if kind == "str":
            return Field.strings(key, np.array([m.get(key, fill) for m in metas]), present)
        return Field(key, kind, np.array([m.get(key, fill) for m in metas], np.int64), present)

    fields = [col("year", "int", 0), col("month", "str", ""), col("rank", "int", 0)]
    fields.append(col("version", "str", ""))
    return Family("pypi", base, q, metas, fields)


def clustered_family(rows: int, queries: int, dim: int = 384, seed: int = 7) -> Family:
    """Synthetic: ``rows`` + ``queries`` unit vectors from 100 Gaussian clusters (unequal
    sizes) in ``dim`` dimensions, with correlated, anti-correlated (per query) and
    uncorrelated metadata."""
    rng = np.random.default_rng(seed)
    n_clusters = 100
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    weights = rng.dirichlet(np.full(n_clusters, 0.7))
    direction = _unit(rng.standard_normal((1, dim)))[0]

    def draw(n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        # rows and queries from their own streams: the rows do not depend on how many
        # queries are asked for (the built collection is reused across runs)
        r = np.random.default_rng([seed, stream])
        c = r.choice(n_clusters, size=n, p=weights)
        return _unit(centres[c] + 0.9 * r.standard_normal((n, dim)).astype(np.float32)), c

    base, cl = draw(rows, 1)
    q, _ = draw(queries, 2)
    score = base @ direction * 10 + 0.3 * rng.standard_normal(rows)
    group = np.where(rng.random(rows) < 0.85, cl // 10, rng.integers(0, 10, rows))
    price = rng.integers(0, 1000, rows)
    flag = rng.random(rows) < 0.3
    tier_present = rng.random(rows) < 0.05
    tier = rng.integers(1, 6, rows)
    sc = np.round(score, 3)
    group_s = np.array([f"g{g}" for g in group])
    metas: list[dict[str, Any]] = []
    for i in range(rows):
        m: dict[str, Any] = {
            "cluster": int(cl[i]),
            "group": str(group_s[i]),
            "score": float(sc[i]),
            "price": int(price[i]),
            "flag": bool(flag[i]),
        }
        if tier_present[i]:
            m["tier"] = int(tier[i])
        metas.append(m)
    everywhere = np.ones(rows, dtype=bool)
    fields = [
        Field("cluster", "int", cl.astype(np.int64), everywhere),
        Field.strings("group", group_s, everywhere),
        Field("score", "float", sc, everywhere),
        Field("price", "int", price.astype(np.int64), everywhere),
        Field("flag", "bool", flag, everywhere),
        Field("tier", "int", tier.astype(np.int64), tier_present),
    ]
    return Family("clustered", base, q, metas, fields)


FAMILIES: dict[str, Callable[..., Family]] = {"pypi": pypi_family, "clustered": clustered_family}
