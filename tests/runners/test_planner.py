"""The planner's estimates and choices (pure functions: no server needed)."""

from __future__ import annotations

import pytest

from laneway.governor.buckets import RateLimits
from laneway.runners.planner import (
    FIRST_TIER,
    PlannerOptions,
    Workload,
    choose,
    native_expected_s,
    realtime_estimate,
    realtime_s_for,
)

MODEL = "claude-sonnet-4-6"
TIER_2 = RateLimits(rpm=1_000, itpm=450_000, otpm=90_000)


def docs(n: int, *, words: int = 200, max_tokens: int = 1024) -> Workload:
    params = {"model": MODEL, "max_tokens": max_tokens,
              "messages": [{"role": "user", "content": "word " * words}]}
    return Workload.of([params] * n, expected_output_tokens=400)


def test_workload_estimates_tokens() -> None:
    w = docs(10, words=100, max_tokens=300)
    assert w.jobs == 10
    assert w.input_tokens == 10 * (500 // 4 + 8)  # 4 characters a token, plus framing
    assert (w.expected_output_tokens, w.max_output_tokens) == (3000, 3000)  # capped


def test_realtime_time_is_bound_by_limits_or_latency() -> None:
    opts = PlannerOptions(first_token_s=1.0, output_tokens_per_s=100.0, concurrency=10)
    # 1,000 jobs at 50 RPM: 20 minutes, whatever the latency.
    slow = realtime_estimate(docs(1000), limits=FIRST_TIER, concurrency=None, local=False,
                             options=opts)
    assert slow.time_s >= 1000 / 50 * 60
    # Unlimited: 100 jobs of 5 s each over 10 lanes.
    fast = realtime_estimate(docs(100), limits=RateLimits(rpm=10**6, itpm=10**9, otpm=10**9),
                             concurrency=None, local=False, options=opts)
    assert fast.time_s == pytest.approx(100 * 5.0 / 10 + 5.0)
    # Cost: ~258 input and 400 output tokens a job at $3/$15 per million.
    assert fast.cost_usd == pytest.approx(100 * (258 * 3 + 400 * 15) / 1e6)
    assert fast.worst_usd == pytest.approx(100 * (258 * 3 + 1024 * 15) / 1e6)


def test_local_is_always_realtime() -> None:
    plan = choose(docs(10_000), local=True, deadline_s=86400)
    assert plan.mode == "realtime" and "local API" in plan.reason
    assert plan.realtime.cost_usd == 0 and plan.native.cost_usd == 0


@pytest.mark.parametrize(("deadline_s", "mode"), [(60, "realtime"), (3600, "hybrid"),
                                                  (86400, "hybrid")])
def test_cheapest_mode_that_meets_the_deadline(deadline_s: float, mode: str) -> None:
    w = docs(100)
    plan = choose(w, local=False, limits=TIER_2, deadline_s=deadline_s)
    assert plan.mode == mode, plan.reason
    meets = [e for e in (plan.realtime, plan.native) if e.time_s <= deadline_s]
    cheapest = min(meets, key=lambda e: e.cost_usd)
    assert (cheapest.mode == "native") == (mode == "hybrid")
    assert plan.reason.startswith(mode + ": ")


def test_no_deadline_small_is_realtime_large_is_native() -> None:
    small = choose(docs(20), local=False, limits=TIER_2)
    assert small.mode == "realtime" and "would save only" in small.reason
    big = choose(docs(20_000), local=False, limits=TIER_2)
    assert big.mode == "native" and "half price" in big.reason


def test_unknown_limits_assume_the_first_tier_and_say_so() -> None:
    plan = choose(docs(100), local=False, deadline_s=60)
    assert "assumed" in plan.reason and "50 RPM" in plan.reason
    assert plan.realtime.time_s >= 120  # 100 requests at 50 a minute
    assert plan.mode == "realtime" and "cannot be met" in plan.reason


def test_budget_prefers_native_when_realtime_would_pass_it() -> None:
    w = docs(1000)
    free = choose(w, local=False, limits=TIER_2, deadline_s=600)
    assert free.mode == "realtime"  # a batch would miss a 10-minute deadline
    tight = choose(w, local=False, limits=TIER_2, deadline_s=600,
                   budget_left_usd=free.realtime.cost_usd * 0.75)
    assert tight.mode == "hybrid" and "budget" in tight.reason
    broke = choose(w, local=False, limits=TIER_2, budget_left_usd=0.01)
    assert broke.mode == "native" and "covers about" in broke.reason


def test_batches_in_flight_are_reattached() -> None:
    plan = choose(docs(5), local=False, limits=TIER_2, deadline_s=30, batches_in_flight=2)
    assert plan.mode == "hybrid" and "re-attaching to 2" in plan.reason


def test_batch_time_is_learnt_from_history() -> None:
    assert native_expected_s(PlannerOptions()) == 3600
    assert native_expected_s(PlannerOptions(), [100.0, 300.0]) == 3600  # too few
    assert native_expected_s(PlannerOptions(), [100.0, 300.0, 200.0]) == 200
    assert native_expected_s(PlannerOptions(native_expected_s=5), [1.0, 2.0, 3.0]) == 5


def test_realtime_seconds_for_part_of_the_run() -> None:
    w = docs(100)
    opts = PlannerOptions(first_token_s=1.0, output_tokens_per_s=400.0, concurrency=10)
    seconds = realtime_s_for(w, limits=RateLimits(rpm=10**6, itpm=10**9, otpm=10**9),
                             concurrency=None, options=opts)
    assert seconds(0) == 0
    assert seconds(10) == pytest.approx(10 * 2.0 / 10 + 2.0)
    assert seconds(100) > seconds(50) > seconds(10)


def test_hybrid_is_tried_when_batches_get_a_fair_window_before_the_fallback() -> None:
    w = docs(100)
    half_hour = choose(w, local=False, limits=TIER_2, deadline_s=1800)
    assert half_hour.mode == "hybrid" and "before the fallback" in half_hour.reason
    ten_minutes = choose(w, local=False, limits=TIER_2, deadline_s=600)
    assert ten_minutes.mode == "realtime"  # a quarter of a batch's hour is not left
    stingy = choose(w, local=False, limits=TIER_2, deadline_s=1800,
                    options=PlannerOptions(hybrid_min_window=0.9))
    assert stingy.mode == "realtime"
