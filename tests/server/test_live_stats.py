"""LiveStats on its own: rows, the timeline's buckets and window, the limits' use."""

from __future__ import annotations

from typing import Any

import pytest

from laneway.cost.prices import Usage, cost_usd
from laneway.governor.buckets import Lane, RateLimits
from laneway.governor.core import Governor
from laneway.server.gateway.exchange import Exchange
from laneway.server.gateway.stats import (
    BUCKET_S,
    SAMPLE_SIZE,
    WINDOW_S,
    LiveStats,
    lane_queue,
    percentile,
)

MODEL = "claude-haiku-4-5"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def exchange(status: int = 200, *, model: str = MODEL, lane: Lane = Lane.BACKGROUND,
             usage: dict[str, Any] | None = None, key: str = "local", queued_s: float = 0.0,
             ttft_s: float | None = None, upstream_errors: int = 0) -> Exchange:
    ex = Exchange(model=model, lane=lane, streamed=lane is Lane.INTERACTIVE, key_name=key)
    ex.queued_s = queued_s
    ex.ttft_s = ttft_s
    ex.upstream_errors = upstream_errors
    ex.end(status, usage=usage)
    return ex


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0 and percentile([], 0.5) is None


def test_rows_add_up_per_key_model_and_lane() -> None:
    stats = LiveStats(Governor, clock=Clock(1000.0))
    used = {"input_tokens": 10, "output_tokens": 4, "cache_read_input_tokens": 7,
            "cache_creation_input_tokens": 3}
    stats.observe(exchange(usage=used, queued_s=0.5, ttft_s=0.2, upstream_errors=2))
    stats.observe(exchange(usage=used, queued_s=1.5, ttft_s=0.4))
    stats.observe(exchange(400))
    stats.observe(exchange(499, lane=Lane.INTERACTIVE))
    stats.observe(exchange(usage=used, key="nightly"))
    stats.observe(exchange(usage=used, model="no-such-model"))
    rows = {(r["key"], r["model"], r["lane"]): r for r in stats.report()["keys"]}
    assert list(rows) == sorted(rows)
    bg = rows[("local", MODEL, "background")]
    one = cost_usd(MODEL, Usage.from_api(used))
    assert bg == {
        "key": "local", "model": MODEL, "lane": "background", "requests": 3, "errors": 1,
        "client_closed": 0, "input_tokens": 20, "output_tokens": 8,
        "cache_creation_input_tokens": 6, "cache_read_input_tokens": 14,
        "cost_usd": pytest.approx(2 * one), "unpriced": 0, "queued_s_total": 2.0,
        "queued_s_max": 1.5, "ttft_s_mean": pytest.approx(0.3), "ttft_s_p50": 0.2,
        "ttft_s_p95": 0.4, "upstream_errors": 2, "answered_by": [MODEL],
        "asked_cost_usd": None}
    closed = rows[("local", MODEL, "interactive")]
    assert (closed["requests"], closed["errors"], closed["client_closed"]) == (1, 1, 1)
    assert closed["ttft_s_mean"] is None and closed["cost_usd"] == 0.0
    assert rows[("nightly", MODEL, "background")]["requests"] == 1
    unknown = rows[("local", "no-such-model", "background")]
    assert unknown["cost_usd"] is None and unknown["unpriced"] == 1


def test_ttft_percentiles_come_from_a_bounded_sample() -> None:
    stats = LiveStats(Governor, clock=Clock(1000.0))
    for i in range(1, 1001):
        stats.observe(exchange(ttft_s=i / 1000))
    row = next(iter(stats.rows.values()))
    assert len(row.ttft_sample) == SAMPLE_SIZE
    view = row.view()
    assert view["ttft_s_mean"] == pytest.approx(0.5005)  # the mean is exact
    assert 0.35 < view["ttft_s_p50"] < 0.65 and view["ttft_s_p95"] > 0.85


def test_timeline_buckets_requests_and_forgets_past_the_window() -> None:
    clock = Clock(1000.0)  # bucket 200 starts at 1000 s
    stats = LiveStats(Governor, clock=clock)
    stats.observe(exchange(usage={"input_tokens": 5, "output_tokens": 2}))
    clock.now += 2 * BUCKET_S + 1
    stats.observe(exchange(usage={"input_tokens": 1, "output_tokens": 1},
                           lane=Lane.INTERACTIVE))
    stats.observe(exchange(400))
    timeline = stats.timeline()
    assert [b["t"] for b in timeline] == [1000.0, 1005.0, 1010.0]
    assert [b["requests"] for b in timeline] == [
        {"interactive": 0, "background": 1}, {"interactive": 0, "background": 0},
        {"interactive": 1, "background": 1}]
    assert [b["errors"] for b in timeline] == [0, 0, 1]
    assert [(b["input_tokens"], b["output_tokens"]) for b in timeline] == [
        (5, 2), (0, 0), (1, 1)]
    clock.now += WINDOW_S  # the window has moved past every request
    timeline = stats.timeline()
    assert len(timeline) == WINDOW_S / BUCKET_S
    assert sum(b["requests"]["background"] + b["requests"]["interactive"]
               for b in timeline) == 0
    assert stats.report()["keys"][0]["requests"] == 2  # the rows are since the start


def test_limit_use_and_the_queue_come_from_the_governor() -> None:
    clock = Clock(50.0)
    governor = Governor(limits=RateLimits(rpm=10, itpm=1000), clock=clock)
    stats = LiveStats(lambda: governor, clock=Clock(1000.0))
    assert stats.report()["limits"] == {}
    permits = [governor.try_acquire(Lane.BACKGROUND, MODEL, input_tokens=100,
                                    max_tokens=10) for _ in range(4)]
    assert all(permits)
    report = stats.report()
    assert report["queue"] == {"interactive": {"waiting": 0, "in_flight": 0},
                               "background": {"waiting": 0, "in_flight": 4}}
    buckets = report["limits"][MODEL]["buckets"]
    assert buckets["requests"] == {"limit": 10, "share": 1.0, "level": 6.0, "use": 0.4}
    assert buckets["input"]["use"] == 0.4
    assert report["timeline"][-1]["limit_use"] == {"requests": 0.4, "input": 0.4,
                                                   "output": None}
    for permit in permits:
        governor.release(permit, outcome="canceled")  # refunds: the buckets fill again
    stats.sample()
    # The bucket keeps the peak it saw.
    assert stats.timeline()[-1]["limit_use"]["requests"] == 0.4
    assert lane_queue(governor)["background"]["in_flight"] == 0
