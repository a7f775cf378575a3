"""Idle listeners of a run's events share one ledger poll (issue 18.4).

Each ``/v1/runs/{id}/events`` client used to sample the ledger itself, on the store's
one thread, so many idle dashboards made ``GET /v1/runs`` slow for everyone.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from laneway.local import RunningLocal
from laneway.runs.config import RunConfig
from laneway.runs.library import run

from .helpers import Served, start_server, wait_for

LISTENERS = 500


def _idle_run(served: Served, run_id: str, tmp_path: Path) -> None:
    """A run enqueued for workers (``laneway run --no-work``): its events never end."""
    jobs = tmp_path / f"{run_id}.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"j{i}", "prompt": f"job {i}"}) + "\n"
                            for i in range(200)))
    config = RunConfig(db=served.agent.settings.url, no_work=True, run_name=run_id)
    summary = asyncio.run(run(jobs, config=config))
    assert summary.pending == 200


async def _list_latency(base_url: str, n: int = 20) -> float:
    """Median seconds of ``GET /v1/runs``."""
    times = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await http.get("/v1/runs")
            times.append(time.perf_counter() - t0)
            assert r.status_code == 200
    return statistics.median(times)


async def _listen(http: httpx.AsyncClient, run_id: str, opened: list[int]) -> None:
    async with http.stream("GET", f"/v1/runs/{run_id}/events") as r:
        assert r.status_code == 200
        opened.append(1)
        async for _ in r.aiter_lines():
            pass


@pytest.fixture
def half_second(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """A server sampling runs twice a second, as ``laneway serve`` does."""
    s = start_server(local_api, tmp_path / "ledger.db", events_interval_s=0.5)
    try:
        yield s
    finally:
        s.stop()


def test_many_listeners_share_one_poll_per_run(half_second: Served, tmp_path: Path) -> None:
    served = half_second
    interval = served.app.state.events_interval_s
    # Count the progress samples handed to the store's thread (whoever asks for them).
    samples = [0]
    astore = served.agent.astore
    call = astore.call

    def counting_call(fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "__name__", "") == "sample":
            samples[0] += 1
        return call(fn, *args, **kwargs)

    astore.call = counting_call  # type: ignore[method-assign]
    for run_id in ("idle-a", "idle-b"):
        _idle_run(served, run_id, tmp_path)

    async def scenario() -> tuple[float, float, int, float]:
        baseline = await _list_latency(served.base_url)
        limits = httpx.Limits(max_connections=LISTENERS + 10)
        opened: list[int] = []
        async with httpx.AsyncClient(base_url=served.base_url, timeout=60,
                                     limits=limits) as http:
            tasks = [asyncio.create_task(_listen(http, ("idle-a", "idle-b")[i % 2], opened))
                     for i in range(LISTENERS)]
            deadline = time.monotonic() + 30
            while len(opened) < LISTENERS:
                assert time.monotonic() < deadline, f"only {len(opened)} listeners opened"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            polls0, t0 = samples[0], time.monotonic()
            loaded = await _list_latency(served.base_url)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
            polls, elapsed = samples[0] - polls0, time.monotonic() - t0
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return baseline, loaded, polls, elapsed

    baseline, loaded, polls, elapsed = asyncio.run(scenario())
    # Two runs: one sample each per interval (a little slack for timer drift), however
    # many listen.
    most = 2 * (elapsed / interval + 2)
    assert 2 <= polls <= most, f"{polls} samples in {elapsed:.2f} s for 2 runs (at most " \
                               f"{most:.0f})"
    assert loaded < 5 * baseline + 0.15, \
        f"GET /v1/runs took {loaded * 1000:.0f} ms with {LISTENERS} listeners, " \
        f"{baseline * 1000:.1f} ms without"
    hub = served.app.state.events_hub
    wait_for(lambda: hub.listeners("idle-a") == hub.listeners("idle-b") == 0,
             what="the listeners to leave")
    wait_for(lambda: not hub.polled_runs(), what="the pollers to stop")


def test_a_listener_sees_the_run_to_its_end(served: Served) -> None:
    jobs = "".join(f'{{"id": "e{i}", "prompt": "word {i}"}}\n' for i in range(20))
    with served.client() as http:
        r = http.post("/v1/runs?name=ends", content=jobs,
                      headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 201
        with http.stream("GET", "/v1/runs/ends/events") as a, \
                http.stream("GET", "/v1/runs/ends/events") as b:
            last = [list(s.iter_lines()) for s in (a, b)]
    for lines in last:
        assert "event: end" in lines
        data = [line for line in lines if line.startswith("data:")][-1]
        assert '"done":20' in data and '"percent":100.0' in data
