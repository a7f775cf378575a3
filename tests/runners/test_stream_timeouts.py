"""A streamed request's silence is bounded by the run's observed gaps (streams from the
local API through the SDK; see also the CLI test in tests/test_cli_outage.py)."""

from __future__ import annotations

import time

import pytest

from laneway.errors import StalledError
from laneway.local import LocalConfig, start_local
from laneway.provider.client import Provider
from laneway.provider.stream import Gaps
from laneway.runners.stream_timeouts import StreamTimeouts
from laneway.runners.timeouts import RequestTimeouts

PARAMS = {"model": "claude-haiku-4-5", "max_tokens": 6,
          "messages": [{"role": "user", "content": "one two three four five six"}]}


def test_the_bound_follows_the_p99_gap_within_floor_and_ceiling_doubling_per_stall() -> None:
    t = StreamTimeouts(ceiling_s=60.0, floor_s=10.0, factor=4.0)
    assert t.idle_s(first=True) is None and t.idle_s(first=False) is None
    for i in range(100):
        t.observe(Gaps(first_s=2.0 + i / 100, longest_s=0.01))
    t.observe(Gaps(first_s=30.0, longest_s=0.01))  # one outlier in 101: above the p99
    assert t.idle_s(first=True) == pytest.approx(4 * 2.99)
    assert t.idle_s(first=False) == 10.0  # the floor
    assert t.idle_s(first=False, stalls=2) == 40.0
    assert t.idle_s(first=False, stalls=3) == 60.0  # the ceiling (the idle timeout)
    t.observe(None)  # a stream with no gaps measured teaches nothing
    assert t.idle_s(first=False) == 10.0


async def test_a_stall_is_cut_once_the_bound_is_known_even_mid_wait() -> None:
    """The stream went silent before any stream had completed (bound unknown): it is cut
    as soon as the bound becomes known and has passed, not at the 60 s idle timeout."""
    running = start_local(LocalConfig(faults="stall=1.0", stall_s=30))
    provider = Provider.at(running.base_url)
    known_at = time.monotonic() + 1.0
    try:
        started = time.monotonic()
        with pytest.raises(StalledError, match=r"no content for 0\.5 s"):
            await provider.stream(PARAMS, idle_timeout_s=60.0, idle_bound=lambda first: (
                0.5 if time.monotonic() >= known_at else None))
        assert 1.0 <= time.monotonic() - started < 3.0
    finally:
        await provider.aclose()
        running.stop()


@pytest.mark.timing
async def test_a_slow_run_learns_a_longer_bound_and_its_streams_are_not_cut() -> None:
    """300 ms between tokens: 4 x that is above a small floor, so a stream as slow as
    the run's others completes; a stall is still cut by the learnt bound."""
    running = start_local(LocalConfig(ttft_ms=400, token_ms=300))
    provider = Provider.at(running.base_url)
    timeouts = RequestTimeouts()
    timeouts.streams.floor_s = 0.1
    try:
        first = await timeouts.send(provider, PARAMS, stream=True)
        assert first.gaps is not None and first.gaps.longest_s >= 0.25
        assert (timeouts.streams.idle_s(first=False) or 0) >= 1.0
        for _ in range(2):
            reply = await timeouts.send(provider, PARAMS, stream=True)
            assert reply.message["stop_reason"] is not None
    finally:
        await provider.aclose()
        running.stop()
    stalling = start_local(LocalConfig(faults="stall=1.0", stall_s=30))
    provider = Provider.at(stalling.base_url)
    try:
        started = time.monotonic()
        with pytest.raises(StalledError):
            await timeouts.send(provider, PARAMS, stream=True)
        assert time.monotonic() - started < 5.0
    finally:
        await provider.aclose()
        stalling.stop()
