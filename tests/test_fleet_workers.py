"""A run's ``--budget`` holds across several ``laneway worker``s on one PostgreSQL: each
request's worst case is reserved in the ledger (``runs.committed_usd``) in one statement
that checks the budget (issue 29, item 1). Before, each worker read the spent total once,
at its start, and could spend the whole remainder itself. And a worker holds a share of
the account's limits in the ledger (``rate_shares``) while it works, as a gateway does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laneway.cost import tokens
from laneway.cost.prices import worst_cost
from laneway.governor.buckets import RateLimits
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import open_store
from laneway.store import schema as S

MODEL = "claude-haiku-4-5"
N = 60
FITS = 12  # jobs whose worst cases the budget holds

pytestmark = pytest.mark.postgres



@pytest.mark.local_config(ttft_ms=100)
async def test_three_workers_spend_one_budget(pg: str, local_api: RunningLocal,
                                              tmp_path: Path) -> None:
    params = [{"model": MODEL, "max_tokens": 16,
               "messages": [{"role": "user", "content": f"item {i:03d} " + "word " * 60}]} for i in range(N)]
    worst = max(worst_cost(MODEL, tokens.input_tokens(p), 16, local=False) for p in params)
    budget = FITS * worst
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"custom_id": f"job-{i}", "params": p}) + "\n"
                           for i, p in enumerate(params)))
    await run(inp, config=RunConfig(db=pg, no_work=True, run_name="capped",
                                    budget_usd=budget))
    reports = await asyncio.gather(*(
        work(WorkerConfig(db=pg, worker_id=f"w{i}", concurrency=4, claim_size=8),
             provider=Provider.at(local_api.base_url)) for i in range(3)))
    store = open_store(pg)
    try:
        counts = store.counts("capped")
        with store.engine.connect() as conn:
            committed = conn.scalar(S.runs.select().with_only_columns(
                S.runs.c.committed_usd).where(S.runs.c.id == "capped"))
    finally:
        store.close()
    sent = local_api.api.stats["requests"]
    # Answers cost less than their worst case, so more than FITS fit; never the whole
    # run (each worker alone would have spent about the budget: three times it in all).
    assert FITS <= sent < N / 2
    assert counts.cost_usd <= budget and committed == pytest.approx(counts.cost_usd)
    assert counts.final == sent
    assert any(r.runs["capped"].note and "budget" in r.runs["capped"].note for r in reports)


@pytest.mark.local_config(ttft_ms=100)
async def test_a_worker_holds_a_rate_share_while_it_works(pg: str, local_api: RunningLocal,
                                                          tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n"
                           for i in range(40)))
    await run(inp, config=RunConfig(db=pg, no_work=True, run_name="shared"))
    store = open_store(pg)
    seen: list[tuple[str, str, float]] = []

    async def watch() -> None:
        while True:
            with store.engine.connect() as conn:
                seen.extend((r.process, r.model, r.grant_requests) for r in conn.execute(
                    S.rate_shares.select()))
            await asyncio.sleep(0.2)

    watcher = asyncio.create_task(watch())
    try:
        report = await work(WorkerConfig(db=pg, worker_id="w-share", concurrency=2,
                                         limits=RateLimits(rpm=6000)),
                            provider=Provider.at(local_api.base_url))
    finally:
        watcher.cancel()
    try:
        assert report.runs["shared"].finished
        assert {p for p, _, _ in seen} == {"w-share"}  # its share, beside any gateway's
        assert any(m == MODEL and 0 < g <= 1 for _, m, g in seen)
        with store.engine.connect() as conn:  # it left: its share is the others' now
            assert conn.execute(S.rate_shares.select()).first() is None
    finally:
        store.close()
