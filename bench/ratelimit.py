"""Goodput under rate limits laneway is not told: laneway vs two kinds of hand-made glue.

3,000 jobs of varied size against a local API limited to --rpm 600 --itpm 200000
--otpm 40000, answering with 0.3 s to first token plus 10 ms a token. Three clients,
each against its own server (so they do not share limits), run side by side:

- laneway: the realtime runner and its governor (limits learnt from headers);
- plain/5: an asyncio.Semaphore(5), sleep(60) on a 429, then try again;
- plain/50: an asyncio.Semaphore(50) and the SDK's default retries (max_retries=2).

Goodput is the work done as a share of what the binding limit allowed in the same
time: tokens (or requests) used / (a full bucket at the start + the limit's refill
over the elapsed time). The 429 share counts every 429 answer the server sent,
including the SDK's hidden retries.

    python bench/ratelimit.py [--jobs 3000] [--max-seconds 420]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic

from _common import local_api_process, print_table, save, varied_jobs, write_jsonl
from laneway.governor.core import Governor
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runs.config import RunConfig
from laneway.runs.ingest import ingest
from laneway.runs.prepare import prepare
from laneway.store import AsyncStore, open_store

LIMITS = {"rpm": 600, "itpm": 200_000, "otpm": 40_000}
MODEL = "claude-haiku-4-5"


class Counter:
    def __init__(self) -> None:
        self.status: dict[int, int] = {}

    async def hook(self, response: Any) -> None:
        self.status[response.status_code] = self.status.get(response.status_code, 0) + 1

    def client(self, base_url: str, *, max_retries: int) -> anthropic.AsyncAnthropic:
        http = anthropic.DefaultAsyncHttpxClient(event_hooks={"response": [self.hook]})
        return anthropic.AsyncAnthropic(base_url=base_url, api_key="bench",
                                        max_retries=max_retries, http_client=http)


def params(job: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": job["max_tokens"],
            "messages": [{"role": "user", "content": job["prompt"]}]}


async def plain(client: anthropic.AsyncAnthropic, jobs: list[dict[str, Any]], *,
                concurrency: int, sleep_on_429: bool, stop_at: float) -> dict[str, Any]:
    sem = asyncio.Semaphore(concurrency)
    results: list[Any] = []
    usage = {"requests": 0, "input": 0, "output": 0, "failed": 0}

    async def one(job: dict[str, Any]) -> None:
        async with sem:
            while time.monotonic() < stop_at:
                try:
                    msg = await client.messages.create(**params(job))
                except anthropic.RateLimitError:
                    if sleep_on_429:
                        await asyncio.sleep(60)
                        continue
                    usage["failed"] += 1
                    return
                except anthropic.APIError:
                    usage["failed"] += 1
                    return
                results.append(msg)
                usage["requests"] += 1
                usage["input"] += msg.usage.input_tokens
                usage["output"] += msg.usage.output_tokens
                return

    tasks = [asyncio.create_task(one(j)) for j in jobs]
    await asyncio.wait(tasks, timeout=max(0.0, stop_at - time.monotonic()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return usage


async def laneway_run(base_url: str, counter: Counter, jobs: list[dict[str, Any]], *,
                      stop_at: float, workdir: Path) -> dict[str, Any]:
    inp = write_jsonl(workdir / "in.jsonl", jobs)
    store = open_store(str(workdir / "ledger.db"))
    cfg = RunConfig()
    row = prepare(store, inp, cfg)
    ingest(store, row, inp, defaults=cfg.defaults, skip_invalid=False)
    astore = AsyncStore(store)
    provider = Provider(counter.client(base_url, max_retries=0), "anthropic", base_url)
    governor = Governor()
    runner = RealtimeRunner(run_id=row.id, astore=astore, provider=provider, governor=governor)
    task = asyncio.create_task(runner.run())
    done, _ = await asyncio.wait({task}, timeout=max(0.0, stop_at - time.monotonic()))
    if not done:
        runner.stop("time")
        await task
    tally = task.result()
    await provider.aclose()
    astore.close()
    store.close()
    return {"requests": tally.succeeded, "input": tally.input_tokens,
            "output": tally.output_tokens, "failed": tally.errored,
            "governor": governor.snapshot(), "history": list(governor.history)[:40]}


def goodput(usage: dict[str, Any], elapsed_s: float) -> dict[str, float]:
    minutes = elapsed_s / 60.0
    shares = {}
    for key, limit in (("requests", LIMITS["rpm"]), ("input", LIMITS["itpm"]),
                       ("output", LIMITS["otpm"])):
        allowed = limit + limit * minutes  # a full bucket to start, then its refill
        shares[key] = usage[key] / allowed
    return shares


async def variant(name: str, jobs: list[dict[str, Any]], max_s: float,
                  run: Callable[[str, Counter, float], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
    server_args = ["--rpm", str(LIMITS["rpm"]), "--itpm", str(LIMITS["itpm"]),
                   "--otpm", str(LIMITS["otpm"]), "--ttft-ms", "300", "--token-ms", "10"]
    with local_api_process(*server_args) as url:
        counter = Counter()
        started = time.monotonic()
        usage = await run(url, counter, started + max_s)
        elapsed = time.monotonic() - started
    shares = goodput(usage, elapsed)
    answers = sum(counter.status.values())
    return {"name": name, "elapsed_s": elapsed, "usage": {k: usage[k] for k in
                                                         ("requests", "input", "output", "failed")},
            "goodput": shares, "binding": max(shares, key=lambda k: shares[k]),
            "answers": answers, "status": counter.status,
            "share_429": counter.status.get(429, 0) / max(1, answers),
            "extra": {k: v for k, v in usage.items() if k in ("governor", "history")}}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=3000)
    ap.add_argument("--max-seconds", type=float, default=420.0)
    args = ap.parse_args()
    jobs = varied_jobs(args.jobs, min_words=40, max_words=400, min_out=16, max_out=128)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)

        async def lw(url: str, counter: Counter, stop_at: float) -> dict[str, Any]:
            return await laneway_run(url, counter, jobs, stop_at=stop_at, workdir=workdir)

        async def p5(url: str, counter: Counter, stop_at: float) -> dict[str, Any]:
            client = counter.client(url, max_retries=0)
            try:
                return await plain(client, jobs, concurrency=5, sleep_on_429=True,
                                   stop_at=stop_at)
            finally:
                await client.close()

        async def p50(url: str, counter: Counter, stop_at: float) -> dict[str, Any]:
            client = counter.client(url, max_retries=2)
            try:
                return await plain(client, jobs, concurrency=50, sleep_on_429=False,
                                   stop_at=stop_at)
            finally:
                await client.close()

        results = await asyncio.gather(
            variant("laneway (not told the limits)", jobs, args.max_seconds, lw),
            variant("plain: concurrency 5, sleep(60) on 429", jobs, args.max_seconds, p5),
            variant("plain: concurrency 50, SDK retries", jobs, args.max_seconds, p50),
        )
    rows = []
    for r in results:
        g = r["goodput"]
        rows.append([r["name"], r["usage"]["requests"], r["usage"]["failed"],
                     f"{r['elapsed_s']:.0f}", r["binding"], f"{g[r['binding']]:.1%}",
                     f"{g['requests']:.0%}/{g['input']:.0%}/{g['output']:.0%}",
                     f"{r['share_429']:.2%}"])
    print_table(
        f"{args.jobs} jobs vs rpm {LIMITS['rpm']} / itpm {LIMITS['itpm']} / otpm {LIMITS['otpm']}"
        " (0.3 s TTFT + 10 ms/token); goal: laneway >= 95% of the binding limit, <= 1% 429s",
        ["client", "done", "failed", "seconds", "binding", "goodput", "rpm/itpm/otpm use",
         "429 share"], rows)
    save("ratelimit", {"limits": LIMITS, "jobs": args.jobs, "results": results})
    print(json.dumps({r["name"]: round(r["goodput"][r["binding"]], 4) for r in results}))


if __name__ == "__main__":
    asyncio.run(main())
