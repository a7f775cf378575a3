"""One process of ``bench/native_budget.py``, run with ``PYTHONPATH`` set to a checkout's
``src`` (so the laneway of that checkout runs it): ``enqueue`` a native run of jobs,
or ``send`` it as one native runner (its own ledger connections), printing one JSON
line. Only API both checkouts share (``run(no_work=True)``, ``run_native``)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from laneway.jobs.formats import JobDefaults
from laneway.provider.client import Provider
from laneway.runners.native import NativeOptions, run_native
from laneway.runs.library import run
from laneway.store import AsyncStore, open_store

MODEL = "claude-haiku-4-5"


async def enqueue(dsn: str, inp: str, budget: float | None, name: str) -> dict[str, object]:
    s = await run(Path(inp), db=dsn, mode="native", no_work=True, run_name=name,
                  defaults=JobDefaults(model=MODEL, max_tokens=16), budget_usd=budget)
    return {"run_id": s.run_id}


async def send(dsn: str, run_id: str, budget: float | None, worker: str, base_url: str,
               max_requests: int) -> dict[str, object]:
    store = open_store(dsn)
    astore = AsyncStore(store)
    provider = Provider.at(base_url)
    t0 = time.perf_counter()
    try:
        tally = await run_native(
            run_id=run_id, astore=astore, provider=provider, budget_usd=budget,
            worker_id=worker, options=NativeOptions(
                poll_initial_s=0.05, poll_max_s=0.3, recover_after_s=0.0,
                max_requests=max_requests))
    finally:
        await provider.aclose()
        astore.close()
        store.close()
    return {"succeeded": tally.succeeded, "batches": tally.batches,
            "stop": tally.stop_reason, "s": time.perf_counter() - t0}


def main() -> None:
    what, dsn, *rest = sys.argv[1:]
    budget = None if rest[1] == "-" else float(rest[1])
    if what == "enqueue":
        out = asyncio.run(enqueue(dsn, rest[0], budget, rest[2]))
    else:
        out = asyncio.run(send(dsn, rest[0], budget, rest[2], rest[3], int(rest[4])))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
