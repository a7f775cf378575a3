"""The outage policy and the request timeout bound, as pure policy (a hand-driven clock)."""

from __future__ import annotations

import asyncio

import pytest

from laneway.errors import (
    AuthenticationError,
    ConnectionLostError,
    OverloadedError,
    ProviderTimeoutError,
    RequestError,
    ServerError,
    StalledError,
)
from laneway.runners.api_wait import ApiWait, no_answer, refused_key
from laneway.runners.timeouts import RequestTimeouts


def test_which_errors_came_with_no_answer() -> None:
    assert no_answer(ConnectionLostError("connection failed"))
    assert no_answer(ConnectionLostError("HTTP 502 from a gateway", status=502))
    assert no_answer(ProviderTimeoutError("the request timed out"))
    assert no_answer(StalledError("no content for 60 s"))
    assert not no_answer(ProviderTimeoutError("Request timeout", status=408))
    assert not no_answer(ServerError("Internal server error", status=500))
    assert not no_answer(OverloadedError("Overloaded", status=529))
    assert not no_answer(RequestError("bad temperature", status=400))
    assert refused_key(AuthenticationError("invalid x-api-key", status=401))
    assert not refused_key(RequestError("not found", status=404))


def test_the_lane_pauses_1_2_4_8_s_and_gives_up_after_the_wait() -> None:
    now = [100.0]
    wait = ApiWait(wait_s=30.0, clock=lambda: now[0])
    err = ConnectionLostError("connection failed: refused")
    assert wait.unanswered(err) is None  # one error alone: a dropped connection
    pauses = []
    while not wait.given_up:
        pause = wait.unanswered(err)
        assert wait.unanswered(err) is None  # in flight during the pause: no longer pause
        pauses.append(pause)
        now[0] += pause or 0.0
    assert pauses == [1, 2, 4, 8, 8, 8]
    assert now[0] - 100.0 >= 30.0
    assert "has not answered for 30 s: connection failed: refused" in wait.message("http://x")


def test_any_answer_ends_the_stretch() -> None:
    now = [0.0]
    wait = ApiWait(wait_s=5.0, clock=lambda: now[0])
    err = ProviderTimeoutError("the request timed out")
    wait.unanswered(err)
    assert wait.unanswered(err) == 1.0
    now[0] += 4.0
    wait.answered()
    now[0] += 4.0
    assert wait.unanswered(err) is None
    assert not wait.given_up
    assert wait.unanswered(err) == 1.0  # the backoff starts over


def test_the_timeout_follows_the_runs_speed_within_floor_and_ceiling() -> None:
    t = RequestTimeouts(ceiling_s=600.0, floor_s=10.0)
    assert t.timeout_s(1024) == 600.0  # speed unknown: the ceiling
    for _ in range(5):
        t.observe(output_tokens=100, elapsed_s=2.0)  # 50 tokens/s
    t.observe(output_tokens=1, elapsed_s=100.0)  # one outlier does not move the median
    assert t.median_tps == 50.0
    assert t.timeout_s(1024) == pytest.approx(4 * 1024 / 50)
    assert t.timeout_s(1024, timeouts=1) == pytest.approx(2 * 4 * 1024 / 50)
    assert t.timeout_s(1024, timeouts=5) == 600.0
    assert t.timeout_s(16) == 10.0


async def test_a_request_sent_before_the_speed_was_known_is_cut_once_it_is() -> None:
    t = RequestTimeouts(ceiling_s=600.0, floor_s=0.2, poll_s=0.02)
    sent_with: list[float] = []

    async def stalled(timeout_s: float) -> str:
        sent_with.append(timeout_s)
        await asyncio.sleep(3600)
        return "never"

    async def learn() -> None:
        await asyncio.sleep(0.1)
        t.observe(output_tokens=1000, elapsed_s=1.0)

    learner = asyncio.create_task(learn())
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(ProviderTimeoutError):
        await t.call(stalled, max_tokens=10)
    assert 0.2 <= loop.time() - started < 1.0
    assert sent_with == [600.0]
    await learner

    async def quick(timeout_s: float) -> float:
        return timeout_s

    assert await t.call(quick, max_tokens=10) == 0.2  # known now: the bound is the timeout


async def test_a_request_far_past_the_usual_time_gives_its_slot_back() -> None:
    from laneway.governor.buckets import Lane
    from laneway.governor.core import Governor

    t = RequestTimeouts()
    governor = Governor(initial_concurrency=2)
    first = await governor.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    governor.release(first, outcome="ok", usage={"input_tokens": 1, "output_tokens": 1})
    stalled = await governor.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    other = await governor.acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    assert governor.try_acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1) is None
    with t.stall_watch(lambda: governor.set_aside(stalled)):
        await asyncio.sleep(0.05)  # no answers yet: nothing counts as stalled
    assert not stalled.set_aside
    t.observe(output_tokens=10, elapsed_s=0.001)  # answers take 1 ms: stalled after 1 s
    assert t.stalled_after_s == 1.0
    with t.stall_watch(lambda: governor.set_aside(stalled)):
        await asyncio.sleep(1.1)
    assert stalled.set_aside
    third = governor.try_acquire(Lane.BACKGROUND, "m", input_tokens=1, max_tokens=1)
    assert third is not None  # the stalled request no longer holds a slot
    for permit in (stalled, other, third):
        governor.release(permit, outcome="ok", usage={"input_tokens": 1, "output_tokens": 1})
    assert governor.state("m").in_flight[Lane.BACKGROUND] == 0
