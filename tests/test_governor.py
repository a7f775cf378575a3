"""The governor with a controllable clock: buckets, AIMD, lanes, pauses, learnt limits."""

from __future__ import annotations

import asyncio

import pytest

from laneway.errors import OverloadedError, RateLimitedError, ServerError
from laneway.governor.buckets import AIMD, Lane, RateLimits, TokenBucket
from laneway.governor.core import Governor, outcome_of
from laneway.governor.demand import InteractiveDemand
from laneway.runs.options import background_governor


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make(limits: RateLimits | None = None, **kw: object) -> tuple[Governor, FakeClock]:
    clock = FakeClock()
    # speed ~0: the governor's own timers never fire; the test moves time and pumps.
    gov = Governor(limits=limits, clock=clock, speed=1e-9, margin=1.0, **kw)  # type: ignore[arg-type]
    return gov, clock


def answered_once(gov: Governor, model: str = "m") -> None:
    """One request sent and answered (no limit said): the model's cold start is over."""
    permit = gov.try_acquire(Lane.BACKGROUND, model, input_tokens=1, max_tokens=1)
    assert permit is not None
    gov.release(permit, outcome="ok", usage={"input_tokens": 1, "output_tokens": 1})


# -- buckets ----------------------------------------------------------------------------
def test_bucket_refills_continuously_up_to_capacity() -> None:
    b = TokenBucket(600, now=0.0)  # 10 per second
    b.take(600, 0.0)
    b.refill(3.0)
    assert b.level == pytest.approx(30)
    b.refill(1000.0)
    assert b.level == 600
    b.take(100, 1000.0)
    assert b.wait_s(200, 0.0, 1000.0) == 0.0
    assert b.wait_s(560, 0.0, 1000.0) == pytest.approx(6.0)


def test_oversize_request_waits_for_a_full_bucket_then_goes() -> None:
    b = TokenBucket(1000, now=0.0)
    b.take(500, 0.0)
    # 5000 tokens can never fit in a 1000 bucket: it needs a full bucket, not forever.
    wait = b.wait_s(5000, 0.0, 0.0)
    assert wait == pytest.approx(500 / (1000 / 60))
    assert b.wait_s(5000, 0.0, wait) == 0.0
    b.take(5000, wait)
    assert b.level == pytest.approx(-4000)  # the debt delays what comes next


# -- AIMD -------------------------------------------------------------------------------
def test_aimd_slow_start_then_additive_and_multiplicative() -> None:
    a = AIMD(initial=4, maximum=64, cooldown_s=5)
    for _ in range(4):
        a.on_success(saturated=True)
    assert a.value == 8  # slow start doubles each clean round
    for _ in range(20):
        a.on_success(saturated=False)
    assert a.value == 8  # not held back by the limit: no reason to grow
    assert a.on_overload(now=100.0)
    assert a.value == 5  # 8 * 0.7
    assert not a.on_overload(now=101.0)  # within the cooldown: one decrease per episode
    assert a.value == 5
    for _ in range(5):
        a.on_success(saturated=True)
    assert a.value == 6  # additive increase after the first decrease
    for _ in range(50):
        a.on_overload(now=200.0 + _ * 10)
    assert a.value == 1  # never below the minimum


# -- lanes ------------------------------------------------------------------------------
async def test_interactive_is_admitted_before_queued_background() -> None:
    gov, clock = make(RateLimits(rpm=60), initial_concurrency=100)  # 1 request per second
    bucket_full = [await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
                   for _ in range(59)]  # nobody has chatted: all but one standing request
    assert len(bucket_full) == 59
    waiting_bg = asyncio.ensure_future(gov.acquire(Lane.BACKGROUND, "m", input_tokens=1,
                                                   max_tokens=1))
    person = asyncio.ensure_future(gov.acquire(Lane.INTERACTIVE, "m", input_tokens=1,
                                               max_tokens=1))
    await asyncio.sleep(0)
    assert person.done() and not waiting_bg.done()  # the standing request's room
    gov.release(person.result(), outcome="ok", usage={"input_tokens": 1, "output_tokens": 1})
    clock.advance(1.0)  # one request refills: the person goes first, though asked later
    person = asyncio.ensure_future(gov.acquire(Lane.INTERACTIVE, "m", input_tokens=1,
                                               max_tokens=1))
    gov.pump()
    await asyncio.sleep(0)
    assert person.done() and not waiting_bg.done()
    # From now the background leaves one request's room for that person.
    clock.advance(1.0)
    gov.pump()
    await asyncio.sleep(0)
    assert not waiting_bg.done()
    clock.advance(1.0)
    gov.pump()
    await asyncio.sleep(0)
    assert waiting_bg.done()
    second = await asyncio.wait_for(  # the room kept: served at once
        gov.acquire(Lane.INTERACTIVE, "m", input_tokens=1, max_tokens=1), 1)
    assert second.lane is Lane.INTERACTIVE


def test_background_alone_gets_the_whole_bucket_and_no_start_up_stall() -> None:
    gov, clock = make(RateLimits(rpm=600, itpm=60_000), initial_concurrency=1000)
    admitted = 0
    while gov.try_acquire(Lane.BACKGROUND, "m", input_tokens=10, max_tokens=5) is not None:
        admitted += 1
    assert admitted == 596  # all but 1% (four requests; the old reserve kept 10%: 540)
    # Drained: the next request waits one refill (0.1 s), not for a tenth of the bucket.
    clock.advance(0.11)
    assert gov.try_acquire(Lane.BACKGROUND, "m", input_tokens=10, max_tokens=5) is not None
    assert gov.snapshot()["m"]["interactive_reserve"] == {
        "requests": 4.0, "input": 0.0, "output": 0.0}
    # A process no person waits on keeps not even that request.
    runs = background_governor(RateLimits(rpm=600))
    runs.fix_concurrency(1000)
    assert sum(runs.try_acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
               is not None for _ in range(601)) == 600


def test_the_reserve_follows_people_and_fades_when_they_leave() -> None:
    gov, clock = make(RateLimits(rpm=600, itpm=60_000), initial_concurrency=1000,
                      demand=lambda: InteractiveDemand(hold_s=30.0, fade_s=30.0))
    people = [gov.try_acquire(Lane.INTERACTIVE, "m", input_tokens=200, max_tokens=50)
              for _ in range(3)]  # three people at once
    assert all(p is not None for p in people)
    reserve = gov.snapshot()["m"]["interactive_reserve"]
    assert reserve["requests"] == 4 and reserve["input"] == 600  # 3 people; 4 standing
    admitted = 0
    while gov.try_acquire(Lane.BACKGROUND, "m", input_tokens=10, max_tokens=5) is not None:
        admitted += 1
    assert admitted == 600 - 3 - 4  # leaves room for the three
    person = gov.try_acquire(Lane.INTERACTIVE, "m", input_tokens=200, max_tokens=50)
    assert person is not None  # found its room at once
    clock.advance(45.0)  # half faded
    assert 0 < gov.snapshot()["m"]["interactive_reserve"]["input"] < 600
    clock.advance(20.0)  # quiet for longer than hold + fade: the standing requests alone
    assert gov.snapshot()["m"]["interactive_reserve"] == {
        "requests": 4.0, "input": 0.0, "output": 0.0}


async def test_429_pauses_the_background_lane_not_people() -> None:
    gov, clock = make()
    p = await gov.acquire(Lane.BACKGROUND, "m", input_tokens=10, max_tokens=10)
    gov.release(p, outcome="rate_limited", retry_after_s=180)  # longer than the SDK's cap
    bg = asyncio.ensure_future(gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1))
    person = await asyncio.wait_for(
        gov.acquire(Lane.INTERACTIVE, "m", input_tokens=1, max_tokens=1), 1)
    assert person is not None
    clock.advance(179.0)
    gov.pump()
    await asyncio.sleep(0)
    assert not bg.done()
    clock.advance(1.5)
    gov.pump()
    await asyncio.sleep(0)
    assert bg.done()
    assert any(h["kind"] == "pause" and h["seconds"] == 180 for h in gov.history)


async def test_release_error_reads_the_outcome_from_the_error() -> None:
    gov, _ = make(initial_concurrency=16)
    st = gov.state("m")
    p = await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    gov.release_error(p, ServerError("boom", status=500))  # a 500: nothing to adapt to
    assert st.aimd.value == 16 and st.paused_until == 0.0
    p = await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    gov.release_error(p, OverloadedError("busy", status=529))  # a 529 lowers concurrency
    assert st.aimd.value < 16 and st.paused_until == 0.0
    p = await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    gov.release_error(p, RateLimitedError("slow down", retry_after_s=42))
    assert [h["seconds"] for h in gov.history if h["kind"] == "pause"] == [42]
    assert st.sent["429"] == 1
    assert [outcome_of(e) for e in (RateLimitedError("x"), OverloadedError("x"),
                                    ServerError("x", error_type="overloaded_error"),
                                    ServerError("x"))] == [
        "rate_limited", "overloaded", "overloaded", "error"]


async def test_concurrency_limit_holds_background_work() -> None:
    gov, _ = make(initial_concurrency=2)
    answered_once(gov)
    a = await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    third = asyncio.ensure_future(gov.acquire(Lane.BACKGROUND, "m", input_tokens=1,
                                              max_tokens=1))
    await asyncio.sleep(0)
    assert not third.done()
    gov.release(a, outcome="ok", usage={"input_tokens": 1, "output_tokens": 1})
    await asyncio.sleep(0)
    assert third.done()


async def test_limits_are_learnt_from_headers_and_per_model() -> None:
    gov, _ = make()
    p = await gov.acquire(Lane.BACKGROUND, "haiku", input_tokens=100, max_tokens=50)
    headers = {
        "anthropic-ratelimit-requests-limit": "50", "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-input-tokens-limit": "30000",
        "anthropic-ratelimit-input-tokens-remaining": "29000",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7000",
    }
    gov.release(p, outcome="ok", usage={"input_tokens": 120, "output_tokens": 40},
                headers=headers)
    snap = gov.snapshot()
    assert snap["haiku"]["buckets"]["requests"]["limit"] == 50
    assert snap["haiku"]["buckets"]["input"]["limit"] == 30000
    assert snap["haiku"]["buckets"]["output"]["limit"] == 8000
    assert "sonnet" not in snap  # another model's limits are its own
    assert gov.state("sonnet").buckets == {}


async def test_estimates_are_settled_by_usage() -> None:
    gov, _ = make(RateLimits(itpm=10_000, otpm=10_000))
    st = gov.state("m")
    p = await gov.acquire(Lane.INTERACTIVE, "m", input_tokens=1000, max_tokens=500)
    assert st.buckets["output"].level == pytest.approx(10_000 - p.output_tokens)
    gov.release(p, outcome="ok", usage={"input_tokens": 1500, "output_tokens": 20})
    assert st.buckets["input"].level == pytest.approx(10_000 - 1500)
    assert st.buckets["output"].level == pytest.approx(10_000 - 20)
    # Later estimates learn from what came back.
    assert st.input_ratio > 1.0
    assert gov.expected_output(st, 500) < 256


async def test_cancelled_waiter_leaves_no_trace() -> None:
    gov, _ = make(initial_concurrency=1)
    await gov.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    waiter = asyncio.ensure_future(gov.acquire(Lane.BACKGROUND, "m", input_tokens=1,
                                               max_tokens=1))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert gov.snapshot()["m"]["waiting"]["background"] == 0


def test_a_learnt_bucket_counts_what_was_sent_before_it_existed() -> None:
    gov, _ = make(initial_concurrency=8)
    sent = [gov.try_acquire(lane, "m", input_tokens=100, max_tokens=5)
            for lane in [Lane.BACKGROUND] + [Lane.INTERACTIVE] * 7]  # people do not wait
    assert all(p is not None for p in sent)  # for the cold start: no limits known yet
    headers = {"anthropic-ratelimit-requests-limit": "600",
               "anthropic-ratelimit-requests-remaining": "20",
               "anthropic-ratelimit-input-tokens-limit": "60000",
               "anthropic-ratelimit-input-tokens-remaining": "2000"}
    first = sent[0]
    assert first is not None
    gov.release(first, outcome="ok", usage={"input_tokens": 100, "output_tokens": 5},
                headers=headers)
    levels = {k: b["level"] for k, b in gov.snapshot()["m"]["buckets"].items()}
    # The seven still in flight may not be in that answer's count: taken off at once.
    assert levels == {"requests": 13.0, "input": 1300.0}


async def test_a_cold_start_sends_one_until_the_upstream_answers() -> None:
    gov, _ = make(initial_concurrency=8)
    first = gov.try_acquire(Lane.BACKGROUND, "m", input_tokens=100, max_tokens=5)
    assert first is not None  # no limit given or known: one at a time (8 were sent)
    rest = [asyncio.ensure_future(gov.acquire(Lane.BACKGROUND, "m", input_tokens=100,
                                              max_tokens=5)) for _ in range(9)]
    await asyncio.sleep(0)
    assert not any(f.done() for f in rest)
    # A stream's headers end it before its end; they say the limit, taken as left.
    gov.heard(first, {"anthropic-ratelimit-requests-limit": "50",
                      "anthropic-ratelimit-requests-remaining": "3"})
    await asyncio.sleep(0)
    assert sum(f.done() for f in rest) == 2  # 3 left, 1 kept for a person: not 8
    assert gov.snapshot()["m"]["buckets"]["requests"]["level"] == 1.0
    # No headers at all (an upstream that says no limits): after its answer, 8 at once.
    gov, _ = make(initial_concurrency=8)
    answered_once(gov)
    assert sum(gov.try_acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
               is not None for _ in range(9)) == 8
    # Limits given (or nothing to learn): no cold start.
    for given in (make(RateLimits(rpm=600), initial_concurrency=8)[0],
                  make(initial_concurrency=8, learn_limits=False)[0]):
        assert sum(given.try_acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
                   is not None for _ in range(9)) == 8
