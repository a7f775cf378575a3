"""A run's ``--budget`` holds across every process sending its native batches: a batch's
worst case (at the batch price) is reserved in the ledger (``runs.committed_usd``) in
the transaction that records it before ``create``, and given back as its results are
filed (issue 29). Before, each runner read what was spent once, at its start, and three
of them each sent a budget's worth."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from laneway.cost import tokens
from laneway.cost.prices import worst_cost
from laneway.jobs.formats import JobDefaults
from laneway.local import LocalConfig, RunningLocal
from laneway.provider.client import Provider
from laneway.runners.native import run_native
from laneway.runs.library import run
from laneway.store import AsyncStore, open_store
from laneway.store import schema as S
from laneway.store.ledger import Store

from .helpers import MODEL, make_input, server_batches
from .test_native import fast

# The echo engine says its prompt back: 60 words cut at 16 tokens, so an answer costs
# near its worst case, and a budget's worth sent twice is over it.
DEFAULTS = JobDefaults(model=MODEL, max_tokens=16)
FITS = 6


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    pg: str = request.getfixturevalue("pg")
    return pg


def _ledger(store: Store) -> tuple[float, float, float]:
    """What the run's results cost, its committed total, its batches' reservations."""
    with store.engine.connect() as conn:
        cost = conn.scalar(select(func.coalesce(func.sum(S.jobs.c.cost_usd), 0.0)))
        committed = conn.scalar(select(S.runs.c.committed_usd))
        reserved = conn.scalar(select(func.coalesce(func.sum(S.batches.c.reserved_usd), 0.0)))
    return float(cost or 0.0), float(committed or 0.0), float(reserved or 0.0)


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=0.3)], indirect=True)
async def test_three_runners_on_one_ledger_spend_one_budget(
        dsn: str, local_api: RunningLocal, tmp_path: Path) -> None:
    inp = make_input(tmp_path / "in.jsonl", 40, words=60)
    params = [{"model": MODEL, "max_tokens": 16, "messages": [
        {"role": "user", "content": json.loads(line)["prompt"]}]}
        for line in inp.read_text().splitlines()]
    worst = max(worst_cost(MODEL, tokens.input_tokens(p), 16, local=False, batch=True)
                for p in params)
    budget = FITS * worst
    enqueued = await run(inp, db=dsn, mode="native", defaults=DEFAULTS, no_work=True,
                         budget_usd=budget)
    stores = [open_store(dsn) for _ in range(3)]
    providers = [Provider.at(local_api.base_url) for _ in stores]
    seen: list[float] = []  # what was committed, every 50 ms

    async def watch() -> None:
        while True:
            seen.append(_ledger(stores[0])[1])
            await asyncio.sleep(0.05)

    astores = [AsyncStore(s) for s in stores]
    watcher = asyncio.create_task(watch())
    try:
        tallies = await asyncio.gather(*(run_native(
            run_id=enqueued.run_id, astore=a, provider=p, budget_usd=budget,
            options=fast(max_requests=FITS), worker_id=f"w{i}")
            for i, (a, p) in enumerate(zip(astores, providers, strict=True))))
        cost, committed, reserved = _ledger(stores[0])
    finally:
        watcher.cancel()
        for p in providers:
            await p.aclose()
        for a in astores:
            a.close()
        for s in stores:
            s.close()
    sent = sum(b.request_counts.succeeded for b in await server_batches(local_api.base_url))
    succeeded = sum(t.succeeded for t in tallies)
    assert FITS <= succeeded == sent < 40  # what was answered was recorded, once
    assert cost <= budget and max(seen) <= budget * (1 + 1e-9)  # never over
    assert committed == pytest.approx(cost) and reserved == pytest.approx(0.0, abs=1e-12)
    assert any(t.stop_reason == "budget" for t in tallies)
