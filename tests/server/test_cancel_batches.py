"""POST /v1/runs/{id}/cancel cancels the run's native batches at the provider, as
``laneway cancel`` does, and records what they had finished (billed) before the cancel."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from laneway.jobs.formats import JobDefaults
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runners.native import NativeOptions
from laneway.runs.library import run

from .helpers import start_server


async def local_batches(local: RunningLocal) -> list[Any]:
    """The batches the local API holds, through the SDK."""
    async with anthropic.AsyncAnthropic(base_url=local.base_url, api_key="t",
                                        max_retries=0) as c:
        return [b async for b in c.messages.batches.list(limit=100)]


@pytest.mark.local_config(ttft_ms=300, batch_concurrency=1)
async def test_cancel_from_the_web_cancels_the_runs_batches(
        tmp_path: Path, local_api: RunningLocal) -> None:
    inp = tmp_path / "in.jsonl"  # one request every 0.3 s: the batch takes 3.6 s
    inp.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"w{i} a b c"}) + "\n"
                           for i in range(12)))
    db = tmp_path / "ledger.db"
    served = start_server(local_api, db)
    provider = Provider.at(local_api.base_url)
    task = asyncio.create_task(run(
        inp, tmp_path / "out.jsonl", provider=provider, db=db, mode="native",
        defaults=JobDefaults(model="claude-sonnet-4-6", max_tokens=100),
        native=NativeOptions(poll_initial_s=0.05, poll_max_s=0.3, recover_after_s=0.0)))
    try:
        deadline = time.monotonic() + 20
        while not await local_batches(local_api):
            assert time.monotonic() < deadline, "the batch was not submitted"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # about three requests done
        async with httpx.AsyncClient(base_url=served.base_url, timeout=30) as http:
            (listed,) = (await http.get("/v1/runs")).json()["data"]
            r = await http.post(f"/v1/runs/{listed['id']}/cancel")
            assert r.status_code == 200, r.text
            body = r.json()
            summary = await asyncio.wait_for(task, timeout=20)
            info = (await http.get(f"/v1/runs/{listed['id']}")).json()
            results = [json.loads(line) for line in
                       (await http.get(f"/v1/runs/{listed['id']}/results")).text.splitlines()]
    finally:
        if not task.done():
            task.cancel()
        await provider.aclose()
        served.stop()
    # The provider was asked to cancel the batch, and it ended with the rest canceled.
    (batch,) = await local_batches(local_api)
    assert batch.cancel_initiated_at is not None
    assert batch.processing_status == "ended"
    assert batch.request_counts.canceled > 0
    assert batch.request_counts.succeeded + batch.request_counts.canceled == 12
    assert body["batches_canceled"] == 1 and body["batches_still_running"] == 0
    assert body["status"] == "canceled" and body["canceled"] >= 1
    # What the batch finished before the cancel is billed, so it is recorded, once.
    assert 1 <= summary.succeeded < 12
    assert batch.request_counts.succeeded == summary.succeeded
    assert (info["status"], info["succeeded"], info["canceled"], info["pending"]) == \
        ("canceled", summary.succeeded, 12 - summary.succeeded, 0)
    assert sorted(r["custom_id"] for r in results) == sorted(f"doc-{i}" for i in range(12))
    assert {r["result"]["type"] for r in results} == {"succeeded", "canceled"}
