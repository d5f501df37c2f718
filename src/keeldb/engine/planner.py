"""The per-unit search planner: which index answers a search, and how wide it walks.

Pure arithmetic over counts (no files, no arrays), so it is tested from numbers alone
(``tests/engine/test_planner.py``). See ``docs/filtering.md``: with a filter, the rows
passing ``filter ∧ live`` are counted (cached per filter); ``ef`` is raised as the pass
rate drops (:func:`filter_ef`); a cost model (:func:`choose_plan`, constants measured on
the reference machine) picks an exact scan of just those rows, an HNSW walk with a bitmap
selector, or (for a filter in repeated use, :func:`compact_eligible`) a scan of a compact
float16 copy of its rows re-ranked exactly. The executor (``Segment.search``) answers any
query that comes back with fewer than ``min(k, count)`` hits exactly instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from keeldb.index.compact import RERANK_FACTOR as COMPACT_RERANK_FACTOR
from keeldb.index.exact import SUBSET_IN_PLACE_MAX_QUERIES

__all__ = [
    "COMPACT_MAX_BYTES",
    "COMPACT_MIN_USES",
    "FILTER_EF_CAP",
    "FILTER_EF_EXPONENT",
    "Plan",
    "choose_plan",
    "compact_eligible",
    "filter_ef",
    "plan_search",
]

# Cost model (microseconds per unit of work), measured on the reference 2-core machine by
# bench/planner.py and recorded in docs/filtering.md:
# * an exact scan of a row subset in place reads each row once: memory-bound,
#   EXACT_US_PER_ROW_DIM per row and dimension once the rows exceed the caches;
# * a batch of queries gathers the rows once and runs one BLAS product:
#   GEMM_US_PER_ROW_DIM per row, dimension and query, plus the gather;
# * an HNSW walk computes about HNSW_NDIS_COEF * ef ** HNSW_NDIS_EXP distances (faiss
#   counters, 100k x 384 graph, m = 16) at HNSW_US_PER_DIS_DIM each per dimension on a
#   float32 graph, HNSW16_US_PER_DIS_DIM on a float16 (cosine) graph: 0.72x, the ratio of
#   the two graphs' per-distance costs measured side by side by bench/planner.py (its
#   runs at 25f3784: 5.6e-4 and 4.0e-4 at ef 64 - 128, on a faster phase of the machine
#   than the run that gave the constants here).
EXACT_US_PER_ROW_DIM = 6.0e-4
GEMM_US_PER_ROW_DIM = 1.7e-4
HNSW_US_PER_DIS_DIM = 7.8e-4
HNSW16_US_PER_DIS_DIM = 0.72 * HNSW_US_PER_DIS_DIM
HNSW_NDIS_COEF = 40.0
HNSW_NDIS_EXP = 0.82
# Tombstones and filters hide rows from the graph walk; ef is raised to
# ef / pass_rate ** FILTER_EF_EXPONENT (capped) to keep finding k allowed rows.
FILTER_EF_EXPONENT = 0.4
FILTER_EF_CAP = 2048

# A filter used at least COMPACT_MIN_USES times on a segment may get a *compact* copy of
# its allowed rows (keeldb.index.compact): a faiss fp16 flat index over just those rows,
# whose best candidates are re-ranked with exact float32 distances. It lives in the
# filter cache and counts against its budget; at most COMPACT_MAX_BYTES each.
COMPACT_MIN_USES = 3
COMPACT_MAX_BYTES = 32 << 20
COMPACT_US_PER_ROW_DIM = 6.2e-5


def choose_plan(
    count: int, ef: int, queries: int, dim: int, compact: bool, fp16: bool = False
) -> str:
    """The cheapest of ``exact``, ``hnsw`` and (when ``compact`` is allowed) ``compact``
    for ``queries`` queries over ``count`` allowed rows (the cost model above); ``fp16``:
    the segment's graph keeps float16 vectors."""
    per_dis = HNSW16_US_PER_DIS_DIM if fp16 else HNSW_US_PER_DIS_DIM
    costs = {"hnsw": queries * HNSW_NDIS_COEF * ef**HNSW_NDIS_EXP * per_dis * dim}
    if queries > SUBSET_IN_PLACE_MAX_QUERIES:
        costs["exact"] = count * dim * (EXACT_US_PER_ROW_DIM + queries * GEMM_US_PER_ROW_DIM)
    else:
        costs["exact"] = queries * count * dim * EXACT_US_PER_ROW_DIM
    if compact:
        costs["compact"] = queries * count * dim * COMPACT_US_PER_ROW_DIM
    return min(costs, key=costs.__getitem__)


def filter_ef(ef: int, count: int, rows: int) -> int:
    """The graph search width when only ``count`` of ``rows`` rows may be returned:
    ``ef / pass_rate ** FILTER_EF_EXPONENT``, at least ``ef``, capped at
    ``max(ef, FILTER_EF_CAP)``."""
    pass_rate = count / rows
    return min(max(ef, int(ef / pass_rate**FILTER_EF_EXPONENT)), max(ef, FILTER_EF_CAP))


def compact_eligible(uses: int, count: int, dim: int, k: int, built: bool) -> bool:
    """Whether a filter's compact copy may answer: it exists (``built``), or the filter
    has been used ``COMPACT_MIN_USES`` times on the segment, its ``count`` rows fit in
    ``COMPACT_MAX_BYTES`` as float16, and they are more than the re-ranked candidates."""
    return built or (
        uses >= COMPACT_MIN_USES
        and count * dim * 2 <= COMPACT_MAX_BYTES
        and count > COMPACT_RERANK_FACTOR * k
    )


@dataclass(frozen=True, slots=True)
class Plan:
    """How one unit answers a search: ``kind`` is ``empty`` (nothing allowed),
    ``exact``, ``hnsw`` or ``compact``; ``ef`` the graph search width to use."""

    kind: str
    ef: int


def plan_search(
    *,
    rows: int,
    count: int,
    restricted: bool,
    filtered: bool,
    ef: int,
    queries: int,
    k: int,
    dim: int,
    has_graph: bool,
    fp16: bool,
    exact: bool,
    filter_uses: int = 0,
    compact_built: bool = False,
) -> Plan:
    """The plan of a search of ``queries`` queries for the top ``k`` in a unit of
    ``rows`` rows of which ``count`` may be returned.

    ``restricted``: some rows are hidden (dead or filtered out), so ``ef`` is raised
    (:func:`filter_ef`); ``filtered``: a filter applies (only then does the cost model
    choose, and ``filter_uses`` / ``compact_built`` describe the filter's cache entry);
    ``has_graph``: the unit has an HNSW graph (``fp16``: of float16 copies); ``exact``:
    the caller asked for an exact search.
    """
    if count == 0:
        return Plan("empty", ef)
    ef_eff = filter_ef(ef, count, rows) if restricted else ef
    kind = "hnsw"
    if exact:
        kind = "exact"
    elif filtered:
        compact_ok = compact_eligible(filter_uses, count, dim, k, compact_built)
        kind = choose_plan(count, ef_eff, queries, dim, compact_ok, fp16)
    if kind == "hnsw" and not has_graph:
        kind = "exact"
    return Plan(kind, ef_eff)
