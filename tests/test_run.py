"""The realtime runner end to end against the local API: results, resume, retry policy."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path

import pytest

from laneway.errors import RunMismatchError
from laneway.governor.core import Governor
from laneway.jobs.formats import JobDefaults
from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.realtime_options import RealtimeOptions
from laneway.runners.retry import RetryPolicy
from laneway.runs.config import RunConfig
from laneway.runs.ingest import ingest
from laneway.runs.library import run
from laneway.runs.prepare import prepare
from laneway.store import AsyncStore, open_store
from laneway.store.statuses import JobStatus


def make_input(path: Path, n: int, *, words: int = 6) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"job-{i}", "prompt": " ".join(f"w{i}x{k}" for k in range(words))}) + "\n")
    return path


def read_output(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_run_writes_every_result_in_input_order(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 120)
    out = tmp_path / "out.jsonl"
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, out, provider=provider, db=tmp_path / "l.db", concurrency=16,
                        defaults=JobDefaults(model="claude-haiku-4-5", max_tokens=50))
    rows = read_output(out)
    assert [r["custom_id"] for r in rows] == [f"job-{i}" for i in range(120)]
    assert all(r["result"]["type"] == "succeeded" for r in rows)
    assert rows[5]["result"]["message"]["content"][0]["text"] == " ".join(f"w5x{k}" for k in range(6))
    assert summary.succeeded == 120 and summary.pending == 0
    in_tok = sum(r["result"]["message"]["usage"]["input_tokens"] for r in rows)
    out_tok = sum(r["result"]["message"]["usage"]["output_tokens"] for r in rows)
    assert (summary.input_tokens, summary.output_tokens) == (in_tok, out_tok)
    assert summary.cost_usd == pytest.approx((in_tok * 1 + out_tok * 5) / 1e6)
    assert local_api.api.stats["requests"] == 120
    await provider.aclose()


async def test_rerun_sends_nothing_and_mismatch_is_refused(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 30)
    provider = Provider.at(local_api.base_url)
    db = tmp_path / "l.db"
    first = await run(inp, tmp_path / "a.jsonl", provider=provider, db=db, run_name="nightly")
    again = await run(inp, tmp_path / "b.jsonl", provider=provider, db=db, run_name="nightly")
    assert first.succeeded == again.succeeded == 30
    assert local_api.api.stats["requests"] == 30  # nothing sent twice
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    with pytest.raises(RunMismatchError, match="max_tokens"):
        await run(inp, None, provider=provider, db=db, run_name="nightly",
                  defaults=JobDefaults(max_tokens=7))
    await provider.aclose()


@pytest.mark.local_config(faults="529=0.15,500=0.1,drop=0.05", seed=3)
async def test_retryable_errors_are_retried(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 80)
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        concurrency=8, max_attempts=10)
    assert summary.succeeded == 80 and summary.errored == 0
    assert summary.retries > 0
    assert local_api.api.stats["faults"] == summary.retries
    await provider.aclose()


@pytest.mark.local_config(faults="midstream=0.3", seed=5)
async def test_midstream_errors_are_retried_when_streaming(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 40)
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                        concurrency=4, stream=True, max_attempts=10)
    assert summary.succeeded == 40
    assert summary.retries >= 5  # about 30% of first attempts hit the fault
    rows = read_output(tmp_path / "out.jsonl")
    assert rows[3]["result"]["message"]["content"][0]["text"] == " ".join(f"w3x{k}" for k in range(6))
    await provider.aclose()


async def test_request_errors_are_recorded_not_retried(tmp_path: Path, local_api: RunningLocal) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(
        '{"id": "good", "prompt": "hello there"}\n'
        '{"custom_id": "bad", "params": {"messages": [{"role": "user", "content": "x"}], "temperature": 5}}\n')
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db")
    rows = {r["custom_id"]: r["result"] for r in read_output(tmp_path / "out.jsonl")}
    assert rows["good"]["type"] == "succeeded"
    assert rows["bad"]["type"] == "errored"
    assert rows["bad"]["error"]["error"]["type"] == "invalid_request_error"
    assert "temperature" in rows["bad"]["error"]["error"]["message"]
    assert summary.errored == 1 and summary.retries == 0
    assert summary.requests == 2  # each sent once
    await provider.aclose()


async def test_long_retry_after_pauses_the_whole_lane(tmp_path: Path) -> None:
    """A 429 with retry-after 90 s (beyond the SDK's 60 s cap) is honoured by pausing
    every background request, on a clock running 100x faster than real time."""
    running = start_local(LocalConfig(faults="429=0.25", fault_retry_after_s=90, seed=11))
    sent: list[float] = []
    speed = 100.0
    clock = lambda: time.monotonic() * speed  # noqa: E731
    governor = Governor(clock=clock, speed=speed)
    provider = Provider.at(running.base_url)
    original = provider.create

    async def create(params: dict, **kw: object) -> object:
        sent.append(clock())
        return await original(params, **kw)  # type: ignore[arg-type]

    provider.create = create  # type: ignore[method-assign]
    inp = make_input(tmp_path / "in.jsonl", 12)
    store = open_store(str(tmp_path / "l.db"))
    try:
        cfg = RunConfig()
        row = prepare(store, inp, cfg)
        ingest(store, row, inp, defaults=cfg.defaults, skip_invalid=False)
        astore = AsyncStore(store)
        runner = RealtimeRunner(run_id=row.id, astore=astore, provider=provider,
                                governor=governor,
                                options=RealtimeOptions(concurrency=1, retry=RetryPolicy()))
        tally = await runner.run()
        astore.close()
        assert tally.succeeded == 12
        assert tally.rate_limited >= 1
        assert running.api.stats["rate_limited"] == 0  # only injected 429s
        # After each 429, the next request (any job) waited >= 90 clock seconds.
        gaps = [b - a for a, b in itertools.pairwise(sent)]
        assert sum(1 for g in gaps if g >= 90) >= tally.rate_limited
        assert store.counts(row.id)[JobStatus.SUCCEEDED] == 12
    finally:
        store.close()
        await provider.aclose()
        running.stop()


async def test_stop_releases_unfinished_jobs(tmp_path: Path) -> None:
    running = start_local(LocalConfig(ttft_ms=50))
    provider = Provider.at(running.base_url)
    inp = make_input(tmp_path / "in.jsonl", 200)
    stop = asyncio.Event()

    async def stop_after_some() -> None:
        while running.api.stats["ok"] < 20:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        stop.set()

    stopper = asyncio.create_task(stop_after_some())
    try:
        summary = await run(inp, None, provider=provider, db=tmp_path / "l.db", concurrency=4,
                            stop_event=stop)
        await stopper
        assert summary.stop_reason == "interrupted"
        assert 0 < summary.succeeded < 200
        assert summary.pending == 200 - summary.succeeded
        store = open_store(str(tmp_path / "l.db"))
        assert store.counts(summary.run_id)[JobStatus.CLAIMED] == 0  # nothing left claimed
        store.close()
        resumed = await run(inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db",
                            concurrency=32)
        assert resumed.succeeded == 200
        assert running.api.stats["requests"] <= 200 + 4
    finally:
        await provider.aclose()
        running.stop()


async def test_the_run_ends_as_soon_as_its_last_result_is_committed(
        tmp_path: Path, local_api: RunningLocal) -> None:
    """No poll between the last result and the end (the claimer's 50 ms tick used to be)."""
    provider = Provider.at(local_api.base_url)
    store = open_store(str(tmp_path / "l.db"))
    astore = AsyncStore(store)
    lags: list[float] = []
    try:
        for i in range(10):
            inp = make_input(tmp_path / f"in{i}.jsonl", 2)
            row = prepare(store, inp, RunConfig())
            ingest(store, row, inp, defaults=RunConfig().defaults, skip_invalid=False)
            last = [0.0]
            runner = RealtimeRunner(run_id=row.id, astore=astore, provider=provider,
                                    governor=Governor(),
                                    options=RealtimeOptions(concurrency=2),
                                    on_result=lambda _t, at=last: at.__setitem__(
                                        0, time.monotonic()))
            tally = await runner.run()
            lags.append(time.monotonic() - last[0])
            assert tally.succeeded == 2
    finally:
        astore.close()
        store.close()
        await provider.aclose()
    lags.sort()
    assert lags[len(lags) // 2] < 0.012, f"lags after the last result: {lags}"


async def test_options_beside_a_config_change_it(tmp_path: Path) -> None:
    """``run(path, config=RunConfig(...), no_work=True)``: the option is applied to the
    config (it was dropped in silence), and an unknown one is a TypeError."""
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"j{i}", "prompt": "hi"}) + "\n"
                           for i in range(3)))
    config = RunConfig(db=str(tmp_path / "l.db"), provider="local")
    summary = await run(inp, config=config, no_work=True, run_name="given")
    assert (summary.run_id, summary.pending, summary.succeeded) == ("given", 3, 0)
    with pytest.raises(TypeError):
        await run(inp, config=config, no_such_option=1)
