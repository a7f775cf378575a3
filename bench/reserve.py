"""The interactive reserve sized to the person (issue 28, goal 2): before and after.

From a drained account (``bench/_upstream.py --drained``: the echo engine's buckets start
empty), the guide's naive batch code (Semaphore(50) + ``messages.create``, sleep(60) on
a 429: bench/_guide.py) sends ``--requests`` jobs through ``laneway serve``; a person
streams a question every few seconds through the same gateway from a quarter of the way
in. For each upstream limit (rpm 600 and rpm 50, each without and with an input-tokens
limit set to bind first) and each checkout (``--before`` and ``--src``, in turn, in one
run) it reports:

- the share of the binding limit used, over the whole run (from the first request to the
  last answer; what the limit allowed is its refill plus what the bucket held at the
  start) and in steady state (the middle 20%-90% of the run);
- the 429s the upstream sent (the gateway's, the client never sees them);
- the person's streamed TTFT p99 beside the batch, less the same person's p99 through
  the same checkout's gateway with nothing else going on (an unlimited upstream): the
  TTFT added; also without the person's first request (before its first one no reserve
  exists in the after side unless it is standing).

    .venv/bin/python bench/reserve.py [--before ../before/src] [--src src]
        [--requests 1200] [--requests-50 150] [--only 600] [--name reserve]

Prints a table and writes ``bench/results/reserve.json`` (``--name``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx

from _common import free_port, percentile, print_table, save, varied_jobs
from _guide import GuideBatch
from gateway import MODEL, load, process, stats_of
from laneway.local.tokenizer import count

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


@contextlib.contextmanager
def upstream(*args: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, str(HERE / "_upstream.py"), "--port", str(port), *args],
                 url + "/v1/laneway/stats", "the upstream", env={"PYTHONPATH": str(SRC)}):
        yield url


@contextlib.contextmanager
def gateway(src: Path, upstream_url: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, process(
            [sys.executable, "-m", "laneway", "serve", "--port", str(port),
             "--db", str(Path(tmp) / "ledger.db")], url + "/v1/models", "laneway serve",
            env={"ANTHROPIC_BASE_URL": upstream_url, "ANTHROPIC_API_KEY": "x",
                 "PYTHONPATH": str(src)}):
        yield url


async def ask(client: anthropic.AsyncAnthropic, i: int) -> dict[str, float]:
    started = time.monotonic()
    first = 0.0
    async with client.messages.stream(model=MODEL, max_tokens=20, messages=[
            {"role": "user", "content": f"question {i}: what is the time where you are?"}],
    ) as stream:
        async for _text in stream.text_stream:
            first = first or time.monotonic()
        final = await stream.get_final_message()
    return {"ttft_ms": (first - started) * 1000, "done": time.monotonic(),
            "input": final.usage.input_tokens, "output": final.usage.output_tokens}


async def person(url: str, *, n: int, every_s: float, after_s: float = 0.0
                 ) -> list[dict[str, float]]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="x")
    await asyncio.sleep(after_s)
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(ask(client, i)))
        await asyncio.sleep(every_s)
    rows = list(await asyncio.gather(*tasks))
    await client.close()
    return rows


def used(rows: list[dict[str, float]], start: float, end: float) -> dict[str, float]:
    inside = [r for r in rows if start <= r["done"] <= end]
    return {"requests": len(inside), "input": sum(r["input"] for r in inside)}


def share(use: dict[str, float], limits: dict[str, int], seconds: float,
          held: dict[str, float]) -> dict[str, float]:
    """Share of each limit: ``use`` over its refill in ``seconds`` plus what it ``held``."""
    return {k: use[k] / max(1e-9, limits[k] * seconds / 60.0 + max(0.0, held.get(k, 0.0)))
            for k in limits}


async def idle_p99(src: Path, n: int) -> float:
    with upstream() as up, gateway(src, up) as gw:
        rows = await person(gw, n=n, every_s=0.3)
    return percentile([r["ttft_ms"] for r in rows], 99)


async def one(src: Path, *, rpm: int, itpm: int | None, n: int,
              drain_at_start: bool = False) -> dict[str, Any]:
    limits = {"requests": rpm, **({"input": itpm} if itpm else {})}
    args = ["--rpm", str(rpm), *(["--itpm", str(itpm)] if itpm else []), "--drained"]
    jobs = varied_jobs(n, min_out=16, max_out=128)
    expected_s = 60.0 * n / rpm
    every = max(1.0, 600.0 / rpm)
    with upstream(*args) as up, gateway(src, up) as gw:
        load0 = load()
        if drain_at_start:  # the gateway's start (20 s at load 20) refilled the account
            async with httpx.AsyncClient(timeout=10) as http:
                (await http.post(up + "/v1/laneway/drain")).raise_for_status()
        levels0 = stats_of(up)["levels"]
        started = time.monotonic()
        guide = GuideBatch(gw)
        batch = asyncio.create_task(guide.run(jobs, concurrency=50, max_s=4 * expected_s + 120))
        mine = await person(gw, n=max(8, int(0.5 * expected_s / every)), every_s=every,
                            after_s=0.25 * expected_s)
        out = await batch
        end = max(r["done"] for r in guide.done_rows + mine)
        stats = stats_of(up)
    theirs = guide.done_rows
    rows = theirs + mine
    wall = end - started
    whole = share(used(rows, started, end), limits, wall,
                  {k: levels0[k] for k in limits})
    a, b = started + 0.2 * wall, started + 0.9 * wall
    steady = share(used(rows, a, b), limits, b - a, {})
    bound = max(whole, key=lambda k: whole[k])
    ttft = [r["ttft_ms"] for r in mine]
    return {"rpm": rpm, "itpm": itpm, "requests": n, "wall_s": wall, "binding": bound,
            "share_whole": whole[bound], "share_steady": steady[bound],
            "shares_whole": whole, "shares_steady": steady,
            "upstream_429": stats.get("rate_limited", 0), "ok": out["ok"],
            "failed": out["failed"], "unfinished": out["unfinished"],
            "client_429": out["client_429"], "person_n": len(mine),
            "person_p99_ms": percentile(ttft, 99), "person_first_ms": ttft[0],
            "person_p99_after_first_ms": percentile(ttft[1:], 99),
            "levels_at_start": levels0, "load": [load0, load()]}


def itpm_for(jobs: list[dict[str, Any]], rpm: int) -> int:
    """An input-tokens limit that binds before ``rpm`` does (at 60% of rpm's worth)."""
    avg = sum(count(j["prompt"]) for j in jobs) / len(jobs)
    return int(rpm * avg * 0.6)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--before", type=Path,
                    help="the baseline's src folder (none: only --src's side is measured)")
    ap.add_argument("--src", type=Path, default=SRC)
    ap.add_argument("--requests", type=int, default=1200, help="jobs at rpm 600")
    ap.add_argument("--requests-50", type=int, default=150, help="jobs at rpm 50")
    ap.add_argument("--only", type=int, choices=(50, 600))
    ap.add_argument("--idle", type=int, default=20, help="person requests, idle baseline")
    ap.add_argument("--drain-at-start", action="store_true",
                    help="empty the upstream's buckets again once the gateway is up")
    ap.add_argument("--name", default="reserve",
                    help="results/NAME.json (runs side by side each keep their own)")
    args = ap.parse_args()
    sides = {"after": args.src.resolve()}
    if args.before is not None:
        sides = {"before": args.before.resolve(), **sides}
    idle = {name: await idle_p99(src, args.idle) for name, src in sides.items()}
    results = []
    for rpm, n in ((600, args.requests), (50, args.requests_50)):
        if args.only and rpm != args.only:
            continue
        for itpm in (None, itpm_for(varied_jobs(n, min_out=16, max_out=128), rpm)):
            for name, src in sides.items():
                r = await one(src, rpm=rpm, itpm=itpm, n=n,
                              drain_at_start=args.drain_at_start)
                r["side"] = name
                r["idle_p99_ms"] = idle[name]
                r["added_p99_ms"] = r["person_p99_ms"] - idle[name]
                r["added_p99_after_first_ms"] = r["person_p99_after_first_ms"] - idle[name]
                results.append(r)
                print(f"  done: rpm {rpm} itpm {itpm} {name}: share {r['share_whole']:.3f}",
                      flush=True)
    rows = [[f"rpm {r['rpm']}" + (f" itpm {r['itpm']}" if r["itpm"] else ""), r["side"],
             r["requests"], f"{r['wall_s']:.0f}", r["binding"], f"{r['share_whole']:.3f}",
             f"{r['share_steady']:.3f}", r["upstream_429"], r["failed"] + r["unfinished"],
             r["person_n"], f"{r['added_p99_ms']:.0f}", f"{r['added_p99_after_first_ms']:.0f}",
             f"{r['person_first_ms']:.0f}", f"{r['load'][0]}-{r['load'][1]}"]
            for r in results]
    print_table(
        "The guide's naive code from a drained account through the gateway, a person beside "
        "it; goal: share >= 0.98 whole and steady, 0 upstream 429s, person p99 added <= 150 "
        "ms (idle p99: " + ", ".join(f"{n} {v:.0f} ms" for n, v in idle.items()) + ")",
        ["limit", "side", "jobs", "wall s", "binding", "share whole", "share steady",
         "upstream 429s", "failed", "person reqs", "p99 added ms", "p99 added w/o 1st",
         "1st TTFT ms", "load"], rows)
    save(args.name, {"idle_p99_ms": idle, "runs": results})


if __name__ == "__main__":
    asyncio.run(main())
