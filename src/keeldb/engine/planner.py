"""The per-unit search planner: which index answers a search, and how wide it walks.

Pure arithmetic over counts (no files, no arrays), so it is tested from numbers alone
(``tests/engine/test_planner.py``). See ``docs/filtering.md``: with a filter, the rows
passing ``filter ∧ live`` are counted (cached per filter); ``ef`` is raised as the pass
rate drops (:func:`filter_ef`); a cost model (:func:`choose_plan`) picks an exact scan of
just those rows, an HNSW walk with a bitmap selector, or (for a filter in repeated use,
:func:`compact_eligible`) a scan of a compact float16 copy of its rows re-ranked exactly.
Plans are priced per unit of work (:func:`work_units`) at prices learned from the times
they take on this machine (:class:`PlanCosts`, one per process), starting from prices
measured on the reference machine. The executor (``Segment.search``) answers any
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
    "PLAN_COSTS",
    "REFERENCE_PRICES",
    "Plan",
    "PlanCosts",
    "choose_plan",
    "compact_eligible",
    "filter_ef",
    "plan_search",
    "work_units",
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
# ef / pass_rate ** FILTER_EF_EXPONENT (capped) to keep finding k allowed rows. faiss's
# filtered walk still visits (and computes distances to) the rows it may not return, and
# stops after ef candidates of either kind, so only about pass_rate * ef of its candidates
# can be results. 0.75 is the exponent that kept recall@10 >= 0.95 (at the ef where
# unfiltered recall first reaches 0.95) over the generated predicate family of
# bench/predicates.py on pypi-minilm, 5 % - 75 % selectivity (0.4, fitted earlier to two
# predicates, gave 0.92 - 0.95 at 15 % - 40 %).
FILTER_EF_EXPONENT = 0.75
FILTER_EF_CAP = 2048

# A filter used at least COMPACT_MIN_USES times on a segment may get a *compact* copy of
# its allowed rows (keeldb.index.compact): a faiss fp16 flat index over just those rows,
# whose best candidates are re-ranked with exact float32 distances. It lives in the
# filter cache and counts against its budget; at most COMPACT_MAX_BYTES each.
COMPACT_MIN_USES = 3
COMPACT_MAX_BYTES = 32 << 20
COMPACT_US_PER_ROW_DIM = 6.2e-5


def work_units(
    kind: str, count: int, ef: int, queries: int, dim: int, fp16: bool = False
) -> tuple[str, int, float]:
    """(price key, size class, units of work) of running plan ``kind`` for ``queries``
    queries over ``count`` allowed rows with graph width ``ef``: the quantities the
    prices of :class:`PlanCosts` multiply. Units: distance dimensions for ``hnsw`` (about
    ``HNSW_NDIS_COEF * ef ** HNSW_NDIS_EXP`` distances a query), row dimensions for the
    scans. The size class is log2 of ``ef`` (a walk) or of the bytes a scan reads, so
    a scan that fits the caches and one that streams from memory get their own price."""
    if kind == "hnsw":
        units = queries * HNSW_NDIS_COEF * ef**HNSW_NDIS_EXP * dim
        return ("hnsw16" if fp16 else "hnsw"), max(ef, 1).bit_length(), units
    if kind == "compact":
        return "compact", max(count * dim * 2, 1).bit_length(), queries * count * dim
    if queries > SUBSET_IN_PLACE_MAX_QUERIES:
        # gathered once, then one BLAS product (priced per row, dimension and query)
        return "gemm", max(count * dim * 4, 1).bit_length(), count * dim * queries
    return "exact", max(count * dim * 4, 1).bit_length(), queries * count * dim


# The reference prices (us per unit of work), before anything was observed.
REFERENCE_PRICES = {
    "hnsw": HNSW_US_PER_DIS_DIM,
    "hnsw16": HNSW16_US_PER_DIS_DIM,
    "exact": EXACT_US_PER_ROW_DIM,
    "gemm": GEMM_US_PER_ROW_DIM,
    "compact": COMPACT_US_PER_ROW_DIM,
}
# How far one observation moves a price (geometric mean weight), and the most one
# observation may claim (a pause or a preempted thread must not swing the plans).
PRICE_WEIGHT = 0.05
PRICE_STEP_MAX = 4.0
# Work below this many units is not observed: fixed costs (Python, faiss call set-up)
# dominate, and they are the same whichever plan runs.
MIN_OBSERVED_UNITS = 200_000


class PlanCosts:
    """Prices of the plans in microseconds per unit of work (:func:`work_units`), per
    price key and size class, learned from the times the plans actually take on this
    machine (:meth:`observe`), starting from :data:`REFERENCE_PRICES` (measured on the
    reference machine by bench/planner.py).

    A class never observed is priced like its nearest observed class of the same key
    (else by the reference), so one measured scan size informs the others until they are
    measured themselves. Load, cache sizes, memory bandwidth and the data's real walk
    lengths are all in the observed times; no constant was fitted to particular filters.
    Thread-safe enough: a price is one float replaced atomically; concurrent observations
    may lose one another's update, which only slows learning.
    """

    def __init__(self, adaptive: bool = True) -> None:
        self.adaptive = adaptive
        self._prices: dict[str, dict[int, float]] = {k: {} for k in REFERENCE_PRICES}

    def price(self, key: str, size_class: int) -> float:
        """Microseconds per unit for ``key`` at ``size_class``."""
        seen = self._prices[key]
        if size_class in seen:
            return seen[size_class]
        if seen:
            # tuple() copies the classes in one C call (the GIL held): another thread may
            # add a class meanwhile, and iterating the dict itself would then fail
            classes = tuple(seen)
            nearest = min(classes, key=lambda c: (abs(c - size_class), -c))
            return seen[nearest]
        return REFERENCE_PRICES[key]

    def estimate(self, kind: str, count: int, ef: int, queries: int, dim: int, fp16: bool) -> float:
        """Predicted microseconds of plan ``kind`` (see :func:`work_units`)."""
        key, size_class, units = work_units(kind, count, ef, queries, dim, fp16)
        return units * self.price(key, size_class)

    def observe(
        self, kind: str, count: int, ef: int, queries: int, dim: int, fp16: bool, seconds: float
    ) -> None:
        """Learn from one execution of plan ``kind`` that took ``seconds``."""
        if not self.adaptive:
            return
        key, size_class, units = work_units(kind, count, ef, queries, dim, fp16)
        if units < MIN_OBSERVED_UNITS or seconds <= 0:
            return
        old = self.price(key, size_class)
        ratio = min(max(seconds * 1e6 / units / old, 1 / PRICE_STEP_MAX), PRICE_STEP_MAX)
        self._prices[key][size_class] = old * ratio**PRICE_WEIGHT

    def reset(self) -> None:
        """Forget every learned price (back to the reference prices)."""
        self._prices = {k: {} for k in REFERENCE_PRICES}

    def snapshot(self) -> dict[str, dict[int, float]]:
        """The learned prices (key -> size class -> us per unit), for stats and tests."""
        return {k: dict(v) for k, v in self._prices.items()}


# The process's prices, shared by every segment (they describe the machine, not a segment).
PLAN_COSTS = PlanCosts()
_REFERENCE = PlanCosts(adaptive=False)


def choose_plan(
    count: int,
    ef: int,
    queries: int,
    dim: int,
    compact: bool,
    fp16: bool = False,
    costs: PlanCosts | None = None,
) -> str:
    """The cheapest of ``exact``, ``hnsw`` and (when ``compact`` is allowed) ``compact``
    for ``queries`` queries over ``count`` allowed rows, priced by ``costs`` (None: the
    reference prices); ``fp16``: the segment's graph keeps float16 vectors."""
    model = _REFERENCE if costs is None else costs
    kinds = ("hnsw", "exact", "compact") if compact else ("hnsw", "exact")
    prices = {k: model.estimate(k, count, ef, queries, dim, fp16) for k in kinds}
    return min(prices, key=prices.__getitem__)


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
    costs: PlanCosts | None = None,
) -> Plan:
    """The plan of a search of ``queries`` queries for the top ``k`` in a unit of
    ``rows`` rows of which ``count`` may be returned.

    ``restricted``: some rows are hidden (dead or filtered out), so ``ef`` is raised
    (:func:`filter_ef`); ``filtered``: a filter applies (only then does the cost model
    choose, and ``filter_uses`` / ``compact_built`` describe the filter's cache entry);
    ``has_graph``: the unit has an HNSW graph (``fp16``: of float16 copies); ``exact``:
    the caller asked for an exact search; ``costs``: the prices (None: the reference).
    """
    if count == 0:
        return Plan("empty", ef)
    ef_eff = filter_ef(ef, count, rows) if restricted else ef
    kind = "hnsw"
    if exact:
        kind = "exact"
    elif filtered:
        compact_ok = compact_eligible(filter_uses, count, dim, k, compact_built)
        kind = choose_plan(count, ef_eff, queries, dim, compact_ok, fp16, costs)
    if kind == "hnsw" and not has_graph:
        kind = "exact"
    return Plan(kind, ef_eff)
