"""The planner decides from numbers alone: no files, no arrays."""

from __future__ import annotations

import pytest

from keeldb.engine.planner import (
    COMPACT_MAX_BYTES,
    COMPACT_MIN_USES,
    FILTER_EF_CAP,
    FILTER_EF_EXPONENT,
    MIN_OBSERVED_UNITS,
    REFERENCE_PRICES,
    Plan,
    PlanCosts,
    choose_plan,
    compact_eligible,
    filter_ef,
    plan_search,
    work_units,
)

BASE = dict(
    rows=100_000,
    count=100_000,
    restricted=False,
    filtered=False,
    ef=64,
    queries=1,
    k=10,
    dim=384,
    has_graph=True,
    fp16=False,
    exact=False,
)


def plan(**changes: object) -> Plan:
    return plan_search(**{**BASE, **changes})  # type: ignore[arg-type]


def test_filter_ef_grows_as_the_pass_rate_drops_and_is_capped() -> None:
    assert filter_ef(64, 1000, 1000) == 64
    assert filter_ef(64, 100, 1000) == int(64 / 0.1**FILTER_EF_EXPONENT)
    assert 64 < filter_ef(64, 500, 1000) < filter_ef(64, 100, 1000)
    assert filter_ef(64, 1, 10_000_000) == FILTER_EF_CAP
    assert filter_ef(4096, 1, 10_000_000) == 4096  # never below the caller's ef


def test_cost_model_picks_exact_for_few_rows_and_the_graph_for_many() -> None:
    assert choose_plan(100, 64, 1, 384, False) == "exact"
    assert choose_plan(100_000, 64, 1, 384, False) == "hnsw"
    # a big batch gathers the rows once: exact stays cheaper for longer per query
    assert choose_plan(3000, 64, 1, 384, False) == "hnsw"
    assert choose_plan(3000, 64, 1000, 384, False) == "exact"


def test_compact_copy_needs_repeated_use_room_and_more_rows_than_candidates() -> None:
    assert not compact_eligible(COMPACT_MIN_USES - 1, 5000, 384, 10, built=False)
    assert compact_eligible(COMPACT_MIN_USES, 5000, 384, 10, built=False)
    too_many = COMPACT_MAX_BYTES // (384 * 2) + 1
    assert not compact_eligible(COMPACT_MIN_USES, too_many, 384, 10, built=False)
    assert not compact_eligible(COMPACT_MIN_USES, 40, 384, 10, built=False)  # <= 4k rows
    assert compact_eligible(0, 40, 384, 10, built=True)  # an existing copy is used


def test_nothing_allowed_is_an_empty_plan() -> None:
    assert plan(count=0, restricted=True).kind == "empty"


def test_unfiltered_search_walks_the_graph_whatever_the_count() -> None:
    assert plan(count=50, restricted=True) == Plan("hnsw", filter_ef(64, 50, 100_000))
    assert plan() == Plan("hnsw", 64)


def test_exact_request_and_missing_graph_scan_exactly() -> None:
    assert plan(exact=True).kind == "exact"
    assert plan(has_graph=False).kind == "exact"
    assert plan(has_graph=False, filtered=True, restricted=True, count=20_000).kind == "exact"


@pytest.mark.parametrize(
    ("count", "uses", "expected"),
    [
        (500, 0, "exact"),
        (50_000, 0, "hnsw"),
        (20_000, 1, "hnsw"),
        (5000, COMPACT_MIN_USES, "compact"),
    ],
)
def test_filtered_plans_follow_the_cost_model(count: int, uses: int, expected: str) -> None:
    got = plan(count=count, filtered=True, restricted=True, filter_uses=uses)
    assert got.kind == expected
    assert got.ef == filter_ef(64, count, 100_000)


def test_float16_graph_is_priced_cheaper() -> None:
    kwargs = dict(count=1300, filtered=True, restricted=True)
    assert plan(**kwargs, ef=64).kind == choose_plan(
        1300, filter_ef(64, 1300, 100_000), 1, 384, False
    )
    assert plan(rows=1300, **kwargs, fp16=False).kind == "exact"
    assert plan(rows=1300, **kwargs, fp16=True).kind == "hnsw"


def test_prices_start_at_the_reference_and_learn_from_observed_times() -> None:
    costs = PlanCosts()
    ref = costs.estimate("compact", 20_000, 64, 1, 384, False)
    assert ref == work_units("compact", 20_000, 64, 1, 384)[2] * REFERENCE_PRICES["compact"]
    # the machine scans this copy 10x slower than the reference: the price climbs
    slow = ref * 10 / 1e6
    for _ in range(200):
        costs.observe("compact", 20_000, 64, 1, 384, False, slow)
    assert costs.estimate("compact", 20_000, 64, 1, 384, False) > 5 * ref
    # and the plan choice follows: a 20k-row copy is no longer cheaper than the walk
    assert choose_plan(20_000, 120, 1, 384, True) == "compact"
    assert choose_plan(20_000, 120, 1, 384, True, costs=costs) == "hnsw"


def test_one_outlier_moves_a_price_only_a_little() -> None:
    costs = PlanCosts()
    before = costs.price("hnsw", 7)
    costs.observe("hnsw", 0, 64, 1, 384, False, 10.0)  # a 10 s pause
    assert before < costs.price("hnsw", 7) <= before * 4**0.1


def test_unobserved_sizes_borrow_the_nearest_observed_price() -> None:
    costs = PlanCosts()
    units = work_units("exact", 50_000, 64, 1, 384)
    costs.observe(
        "exact", 50_000, 64, 1, 384, False, units[2] * 1e-6 * 2 * REFERENCE_PRICES["exact"]
    )
    learned = costs.price("exact", units[1])
    assert learned > REFERENCE_PRICES["exact"]
    assert costs.price("exact", units[1] + 3) == learned
    assert costs.snapshot()["exact"] == {units[1]: learned}


def test_tiny_work_and_a_frozen_model_are_not_observed() -> None:
    costs = PlanCosts()
    costs.observe("exact", 10, 64, 1, 8, False, 1.0)  # below MIN_OBSERVED_UNITS
    assert work_units("exact", 10, 64, 1, 8)[2] < MIN_OBSERVED_UNITS
    frozen = PlanCosts(adaptive=False)
    frozen.observe("hnsw", 0, 64, 1, 384, False, 1.0)
    assert costs.snapshot() == frozen.snapshot() == {k: {} for k in REFERENCE_PRICES}


def test_prices_are_read_and_learned_from_many_threads() -> None:
    import threading

    costs = PlanCosts()
    errors: list[BaseException] = []

    def learn(offset: int) -> None:
        try:
            for i in range(2000):
                rows = 1000 << ((i + offset) % 12)
                costs.observe("exact", rows, 64, 1, 384, False, 1e-3)
                costs.estimate("exact", rows * 3, 64, 1, 384, False)
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=learn, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert costs.snapshot()["exact"]
