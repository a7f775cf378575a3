"""``laneway run`` beside a ``laneway serve`` on one SQLite ledger (the commonest single
box) holds a share of the account's limits in the ledger while it sends, as the serve
does; alone on its ledger it beats nothing (issue 29, item 1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from laneway.governor.buckets import RateLimits
from laneway.governor.core import Governor
from laneway.governor.quota import QuotaSharing
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.store import AsyncStore, open_store
from laneway.store import schema as S

LIMITS = RateLimits(rpm=6000)


def _input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n"
                            for i in range(n)))
    return path


async def _run_watching(db: Path, inp: Path, base_url: str) -> set[str]:
    """Run ``inp``; the processes seen in ``rate_shares`` while it ran."""
    store = open_store(db)
    seen: set[str] = set()

    async def watch() -> None:
        while True:
            with store.engine.connect() as conn:
                seen.update(r.process for r in conn.execute(S.rate_shares.select()))
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    try:
        summary = await run(inp, config=RunConfig(db=str(db), concurrency=2, limits=LIMITS),
                            provider=Provider.at(base_url))
        assert summary.succeeded == 30
    finally:
        watcher.cancel()
        store.close()
    return seen


@pytest.mark.local_config(ttft_ms=100)
async def test_a_run_beside_a_serve_holds_a_share(local_api: RunningLocal,
                                                  tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    assert await _run_watching(db, _input(tmp_path / "alone.jsonl", 30),
                               local_api.base_url) == set()  # alone: no share, no beats
    astore = AsyncStore(open_store(db))
    serve = QuotaSharing(process="the-serve")  # what `laneway serve` runs beside its agent
    await serve.start(astore, Governor(limits=LIMITS))
    try:
        seen = await _run_watching(db, _input(tmp_path / "beside.jsonl", 30),
                                   local_api.base_url)
    finally:
        await serve.stop()
        astore.close()
        astore.store.close()
    assert "the-serve" in seen and len(seen) == 2  # the run's own share beside the serve's
