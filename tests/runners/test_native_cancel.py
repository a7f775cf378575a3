"""Cancel (what a canceled batch still finished is recorded) and the deadline fallback
(batches for the bulk, realtime for what they have not finished near the deadline)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from laneway.governor.buckets import RateLimits
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runners.planner import PlannerOptions
from laneway.runs.cancel import cancel
from laneway.runs.library import run
from laneway.store import AsyncStore, open_store

from .helpers import await_until, ledger_batches, make_input, read_output, server_batches
from .test_native import DEFAULTS, fast, jobs_of


@pytest.mark.local_config(ttft_ms=300, batch_concurrency=1)
async def test_cancel_records_what_the_batch_finished(tmp_path: Path,
                                                      local_api: RunningLocal) -> None:
    inp = make_input(tmp_path / "in.jsonl", 12)  # 3.6 s of batch work
    db = tmp_path / "l.db"
    provider = Provider.at(local_api.base_url)
    task = asyncio.create_task(run(inp, tmp_path / "out.jsonl", provider=provider, db=db,
                                   mode="native", defaults=DEFAULTS, native=fast()))
    await await_until(lambda: db.exists() and any(
        r.provider_batch_id for r in ledger_batches(db)), what="the batch submitted")
    await asyncio.sleep(1.0)  # about three requests done
    store = open_store(str(db))
    astore = AsyncStore(store)
    other = Provider.at(local_api.base_url)
    notices: list[str] = []
    report = await cancel(store.list_runs()[0].id, astore=astore, provider=other,
                          wait_s=10, on_notice=notices.append, options=fast())
    astore.close()
    store.close()
    summary = await asyncio.wait_for(task, timeout=20)
    await provider.aclose()
    await other.aclose()
    assert report.batches_canceled == 1 and report.batches_still_running == 0
    assert 1 <= summary.succeeded < 12
    assert summary.canceled == 12 - summary.succeeded and summary.pending == 0
    assert summary.cost_usd > 0  # the finished ones are billed, so recorded
    (batch,) = await server_batches(local_api.base_url)
    assert batch.cancel_initiated_at is not None
    assert batch.request_counts.succeeded == summary.succeeded  # all of them recorded
    rows = read_output(tmp_path / "out.jsonl")
    assert len(rows) == 12
    assert {r["result"]["type"] for r in rows} == {"succeeded", "canceled"}
    runs = open_store(str(db)).list_runs()
    assert runs[0].status == "canceled"


@pytest.mark.local_config(ttft_ms=1000, batch_concurrency=1)
async def test_hybrid_moves_unfinished_jobs_to_realtime_before_the_deadline(
        tmp_path: Path, local_api: RunningLocal) -> None:
    # The batch does one request a second; realtime does them all at once in ~1 s. With
    # the deadline 7 s away, auto chooses hybrid, then near the deadline cancels the
    # batch and sends what it has not finished realtime.
    inp = make_input(tmp_path / "in.jsonl", 10)
    provider = Provider.at(local_api.base_url)
    notices: list[str] = []
    started = time.time()
    summary = await run(
        inp, tmp_path / "out.jsonl", provider=provider, db=tmp_path / "l.db", mode="auto",
        defaults=DEFAULTS, deadline_at=started + 7.0,
        limits=RateLimits(rpm=10_000, itpm=10_000_000, otpm=10_000_000),
        planner=PlannerOptions(native_expected_s=3.0, first_token_s=1.0,
                               output_tokens_per_s=1e6),
        native=fast(fallback_margin_s=2.0), on_notice=notices.append)
    await provider.aclose()
    elapsed = time.time() - started
    assert summary.plan is not None and summary.plan.startswith("hybrid")
    assert (summary.mode, summary.succeeded, summary.pending) == ("hybrid", 10, 0)
    assert elapsed < 7.0, f"missed the deadline: {elapsed:.1f} s"
    modes = [r["mode"] for r in jobs_of(tmp_path / "l.db", summary.run_id)]
    assert modes.count("native") >= 1 and modes.count("realtime") >= 1
    # Nothing paid twice: realtime sent exactly the jobs the batch did not finish.
    assert local_api.api.stats["requests"] == modes.count("realtime")
    (batch,) = await server_batches(local_api.base_url)
    assert batch.cancel_initiated_at is not None
    assert batch.request_counts.succeeded == modes.count("native")
    assert any("canceling 1 batch(es)" in n for n in notices)
    assert [r["custom_id"] for r in read_output(tmp_path / "out.jsonl")] == \
        [f"doc-{i}" for i in range(10)]
