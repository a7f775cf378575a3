"""The governor against the local API's simulated rate limits (real time, real HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from laneway.errors import RateLimitedError
from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.local import LocalConfig, start_local
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.realtime_options import RealtimeOptions
from laneway.runs.config import RunConfig
from laneway.runs.ingest import ingest
from laneway.runs.prepare import prepare
from laneway.store import AsyncStore, open_store


def setup_run(tmp_path: Path, n: int) -> tuple[object, str]:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"j{i}", "prompt": f"short prompt {i}"}) + "\n"
                           for i in range(n)))
    store = open_store(str(tmp_path / "l.db"))
    cfg = RunConfig()
    row = prepare(store, inp, cfg)
    ingest(store, row, inp, defaults=cfg.defaults, skip_invalid=False)
    return store, row.id


@pytest.mark.timing
async def test_learns_the_limit_and_paces_below_it(tmp_path: Path) -> None:
    running = start_local(LocalConfig(rpm=600))  # 10/s, with a full minute of burst
    store, run_id = setup_run(tmp_path, 700)
    astore = AsyncStore(store)  # type: ignore[arg-type]
    provider = Provider.at(running.base_url)
    governor = Governor()  # not told the limit
    try:
        runner = RealtimeRunner(run_id=run_id, astore=astore, provider=provider,
                                governor=governor)
        started = time.monotonic()
        tally = await runner.run()
        elapsed = time.monotonic() - started
        assert tally.succeeded == 700
        snap = governor.snapshot()["claude-haiku-4-5"]
        assert snap["buckets"]["requests"]["limit"] == 600  # learnt from the headers
        # 600 of burst, then 100 more at 10/s: about 10 s, not much more.
        assert elapsed >= 8.0
        assert running.api.stats["rate_limited"] <= 7  # <= 1% of requests
    finally:
        astore.close()
        await provider.aclose()
        running.stop()


async def test_interactive_request_jumps_the_background_queue(tmp_path: Path) -> None:
    running = start_local(LocalConfig(rpm=300, ttft_ms=20))
    store, run_id = setup_run(tmp_path, 3000)
    astore = AsyncStore(store)  # type: ignore[arg-type]
    provider = Provider.at(running.base_url)
    governor = Governor()
    runner = RealtimeRunner(run_id=run_id, astore=astore, provider=provider, governor=governor,
                            options=RealtimeOptions())
    task = asyncio.create_task(runner.run())
    try:
        # Wait until background work has used the burst and is queueing on the bucket.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            snap = governor.snapshot().get("claude-haiku-4-5")
            if snap and snap["waiting"]["background"] > 0 and \
                    snap["buckets"].get("requests", {}).get("level", 99) < 40:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("background work never saturated the limit")
        waits = []
        for _ in range(3):
            t0 = time.monotonic()
            permit = await governor.acquire(Lane.INTERACTIVE, "claude-haiku-4-5",
                                            input_tokens=5, max_tokens=20)
            waits.append(time.monotonic() - t0)
            reply = await provider.stream({"model": "claude-haiku-4-5", "max_tokens": 20,
                                           "messages": [{"role": "user", "content": "hi you"}]})
            governor.release(permit, outcome="ok", usage=reply.usage, headers=reply.headers)
            assert reply.text == "hi you"
            assert governor.snapshot()["claude-haiku-4-5"]["waiting"]["background"] > 0
        assert max(waits) < 0.1  # admitted at once while background work waits
        assert running.api.stats["rate_limited"] == 0
    finally:
        runner.stop()
        await task
        astore.close()
        await provider.aclose()
        running.stop()


async def test_a_429_from_the_api_releases_with_its_wait_and_its_count() -> None:
    """The governor reads a failed request's error (real HTTP): its ``retry-after``
    pauses the background lane and its rate-limit headers replace the governor's count."""
    running = start_local(LocalConfig(rpm=2))
    provider = Provider.at(running.base_url)
    governor = Governor()  # not told the limit
    model = "claude-haiku-4-5"
    params = {"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    try:
        for _ in range(2):  # the burst: what the limit allows at once
            await provider.create(params)
        permit = await governor.acquire(Lane.BACKGROUND, model, input_tokens=5, max_tokens=5)
        try:
            await provider.create(params)
        except RateLimitedError as err:
            error = err
        else:
            raise AssertionError("a third request within the minute was not refused")
        assert error.retry_after_s is not None and error.retry_after_s > 0
        governor.release_error(permit, error)
        snap = governor.snapshot()[model]
        assert snap["buckets"]["requests"]["limit"] == 2  # learnt from the error's headers
        assert snap["buckets"]["requests"]["level"] < 1  # the server's count, not a refund
        assert snap["sent"]["429"] == 1
        pauses = [h for h in governor.history if h["kind"] == "pause"]
        assert [p["seconds"] for p in pauses] == [round(error.retry_after_s, 3)]
    finally:
        await provider.aclose()
        running.stop()
