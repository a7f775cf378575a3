"""HybridAgent: a person's stream and durable background runs over one provider and governor."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anthropic
import pytest

from laneway.agent import HybridAgent
from laneway.errors import ConfigError
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.store import open_store
from laneway.store.statuses import JobStatus


@pytest.fixture
async def provider(local_api: RunningLocal) -> AsyncIterator[Provider]:
    client = anthropic.AsyncAnthropic(base_url=local_api.base_url, api_key="k", max_retries=0)
    p = Provider(client, "local", local_api.base_url)
    yield p
    await p.aclose()


def jobs(n: int, words: int = 5) -> list[dict[str, str]]:
    return [{"id": f"job-{i}", "prompt": " ".join(f"w{i}x{k}" for k in range(words))}
            for i in range(n)]


async def test_submit_and_respond_share_one_governor(provider: Provider, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    async with HybridAgent(provider=provider, db=db, progress_interval_s=0.05) as agent:
        run_id = await agent.submit(jobs(30))
        turn = await agent.respond("hello while the run goes on")
        assert turn.text == "hello while the run goes on"
        results = await agent.results(run_id, timeout_s=20)
        assert [cid for cid, _ in results] == [f"job-{i}" for i in range(30)]
        assert all(r["type"] == "succeeded" for _, r in results)
        assert results[3][1]["message"]["content"][0]["text"].startswith("w3x0 w3x1")
        progress = agent.progress(run_id)
        assert (progress.done, progress.total, progress.phase) == (30, 30, "done")
        sent = agent.governor.snapshot()[agent.model]["sent"]["requests"]
        assert sent == 31  # 30 background + 1 interactive, all through the same governor
    store = open_store(db)  # durable: another process sees the finished run
    try:
        run = store.get_run(run_id)
        assert run is not None and run.status == "done"
        assert store.counts(run_id).final == 30
        events = store.events_since(run_id, kind="progress")
        assert events and events[-1]["data"]["succeeded"] == 30
        assert "governor" in events[-1]["data"]
    finally:
        store.close()


@pytest.mark.timing
@pytest.mark.local_config(token_ms=200)
async def test_the_persons_stream_goes_before_background_work(
        provider: Provider, tmp_path: Path) -> None:
    async with HybridAgent(provider=provider, db=tmp_path / "l.db", concurrency=1) as agent:
        run_id = await agent.submit(jobs(12, words=20))  # ~12 x 4 s, one at a time
        await asyncio.sleep(0.1)
        started = time.monotonic()
        turn = await agent.respond("me first")  # 2 tokens: 0.4 s
        waited_s = time.monotonic() - started
        # Behind the background request in flight the person would wait ~4 s more; the
        # bounds leave room for a loaded machine (0.2 s and 0.4 s on a quiet one).
        assert turn.ttft_s is not None and turn.ttft_s < 1.5
        assert waited_s < 2.0
        assert agent.progress(run_id).done < 6  # the run was still going
        await agent.cancel(run_id)


async def test_resubmitting_resumes_the_same_run(local_api: RunningLocal, provider: Provider,
                                                 tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    async with HybridAgent(provider=provider, db=db) as agent:
        first = await agent.submit(jobs(5))
        await agent.wait(first, timeout_s=10)
        again = await agent.submit(jobs(5))
        assert again == first
        assert agent.progress(again).done == 5
        assert not agent.is_live(again)  # nothing left to send
    assert local_api.api.stats["requests"] == 5  # finished jobs are never sent again


@pytest.mark.local_config(token_ms=20)
async def test_cancel_records_the_rest_as_canceled(provider: Provider, tmp_path: Path) -> None:
    async with HybridAgent(provider=provider, db=tmp_path / "l.db", concurrency=2) as agent:
        run_id = await agent.submit(jobs(40, words=10))
        await asyncio.sleep(0.3)
        canceled = await agent.cancel(run_id)
        assert canceled > 20
        results = dict(await agent.results(run_id))
        assert len(results) == 40
        kinds = {r["type"] for r in results.values()}
        assert kinds <= {"succeeded", "canceled"} and "canceled" in kinds
        assert agent.store.get_run(run_id).status == "canceled"  # type: ignore[union-attr]


@pytest.mark.local_config(token_ms=10)
async def test_closing_leaves_the_run_resumable(provider: Provider, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    path = tmp_path / "in.jsonl"
    async with HybridAgent(provider=provider, db=db, concurrency=1) as agent:
        path.write_text("".join(f'{{"id": "{j["id"]}", "prompt": "{j["prompt"]}"}}\n'
                                for j in jobs(30)))
        run_id = await agent.submit(path)
        deadline = time.monotonic() + 30  # closed once a first job is done, durably
        while (await agent.astore.counts(run_id))[JobStatus.SUCCEEDED] == 0:
            assert time.monotonic() < deadline, "no job finished"
            await asyncio.sleep(0.02)
    async with HybridAgent(provider=provider, db=db) as agent:
        assert agent.store.get_run(run_id).status == "stopped"  # type: ignore[union-attr]
        done_before = agent.progress(run_id).done
        assert 0 < done_before < 30
        assert await agent.submit(path) == run_id
        results = await agent.results(run_id, timeout_s=20)
        assert len(results) == 30 and all(r["type"] == "succeeded" for _, r in results)


async def test_a_mode_it_cannot_run_is_refused_before_anything_is_written(
        provider: Provider, tmp_path: Path) -> None:
    async with HybridAgent(provider=provider, db=tmp_path / "ledger.db") as agent:
        with pytest.raises(ConfigError, match="mode 'auto': choose realtime, native, hybrid"):
            await agent.submit(jobs(2), mode="auto")
        assert not (tmp_path / "inputs").exists()
        assert agent.store.list_runs() == []
