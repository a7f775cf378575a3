"""A person's time to first token while a background run saturates the same limits.

One local API (rpm 600 / itpm 200k / otpm 40k, 0.3 s to first token + 10 ms a token) and
one governor. Phase 1 (idle): a streamed interactive request every second for a minute.
Phase 2 (loaded): the same requests while laneway's realtime runner pushes thousands of
background jobs through the same governor and server. Time to first token is measured
from asking the governor to the first text delta.

    python bench/interactive.py [--seconds 60] [--background-jobs 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import local_api_process, percentile, print_table, save, varied_jobs, write_jsonl
from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runs.config import RunConfig
from laneway.runs.ingest import ingest
from laneway.runs.prepare import prepare
from laneway.store import AsyncStore, open_store

MODEL = "claude-haiku-4-5"
SERVER = ["--rpm", "600", "--itpm", "200000", "--otpm", "40000", "--ttft-ms", "300",
          "--token-ms", "10"]


async def interactive(provider: Provider, governor: Governor, seconds: int) -> list[float]:
    ttfts: list[float] = []

    async def one(i: int) -> None:
        started = time.monotonic()
        first: list[float] = []
        permit = await governor.acquire(Lane.INTERACTIVE, MODEL, input_tokens=30,
                                        max_tokens=40)
        try:
            reply = await provider.stream(
                {"model": MODEL, "max_tokens": 40, "messages": [
                    {"role": "user", "content": f"question {i}: what is the time where you are now?"}]},
                on_text=lambda _t: first.append(time.monotonic()) if not first else None)
        except Exception:
            governor.release(permit, outcome="error")
            raise
        governor.release(permit, outcome="ok", usage=reply.usage, headers=reply.headers)
        ttfts.append((first[0] - started) * 1000)

    tasks = []
    for i in range(seconds):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1.0)
    await asyncio.gather(*tasks)
    return ttfts


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--background-jobs", type=int, default=4000)
    args = ap.parse_args()
    with local_api_process(*SERVER) as url, tempfile.TemporaryDirectory() as tmp:
        provider = Provider.at(url)
        governor = Governor()
        idle = await interactive(provider, governor, args.seconds)

        inp = write_jsonl(Path(tmp) / "bg.jsonl",
                          varied_jobs(args.background_jobs, min_out=16, max_out=128))
        store = open_store(str(Path(tmp) / "ledger.db"))
        cfg = RunConfig()
        row = prepare(store, inp, cfg)
        ingest(store, row, inp, defaults=cfg.defaults, skip_invalid=False)
        astore = AsyncStore(store)
        runner = RealtimeRunner(run_id=row.id, astore=astore, provider=provider,
                                governor=governor)
        background = asyncio.create_task(runner.run())
        await asyncio.sleep(15)  # let it use the burst and settle on the limits
        snap_before = governor.snapshot()[MODEL]
        loaded = await interactive(provider, governor, args.seconds)
        snap_after = governor.snapshot()[MODEL]
        runner.stop("bench over")
        tally = await background
        astore.close()
        store.close()
        await provider.aclose()

    def stats(xs: list[float]) -> dict[str, float]:
        return {"p50": percentile(xs, 50), "p99": percentile(xs, 99), "max": max(xs)}

    s_idle, s_loaded = stats(idle), stats(loaded)
    added = s_loaded["p99"] - s_idle["p99"]
    print_table(
        "Interactive time to first token (ms), one request a second; goal: loaded p99 <= idle p99 + 150 ms",
        ["phase", "requests", "p50", "p99", "max"],
        [["idle", len(idle), f"{s_idle['p50']:.0f}", f"{s_idle['p99']:.0f}", f"{s_idle['max']:.0f}"],
         ["background saturating", len(loaded), f"{s_loaded['p50']:.0f}",
          f"{s_loaded['p99']:.0f}", f"{s_loaded['max']:.0f}"]])
    util = {k: v["utilization"] for k, v in snap_after["buckets"].items()}
    print(f"\np99 added by the background load: {added:.0f} ms; background jobs done meanwhile: "
          f"{tally.succeeded}; background waiting when measured: {snap_before['waiting']}; "
          f"limit use over the run: {util}")
    data: dict[str, Any] = {"idle_ms": s_idle, "loaded_ms": s_loaded, "p99_added_ms": added,
                            "background_done": tally.succeeded, "governor": snap_after,
                            "idle_samples": idle, "loaded_samples": loaded}
    save("interactive", data)


if __name__ == "__main__":
    asyncio.run(main())
