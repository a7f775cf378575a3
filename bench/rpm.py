"""Benchmark: how exactly the local API enforces ``--rpm``, over whole minutes.

Starts ``laneway local --engine echo --rpm RPM`` in its own process, drains the bucket's
starting burst (it starts full, as the API's does), then lets ``--senders`` clients send
one-token requests as fast as they can for ``--minutes`` minutes, through the official
SDK with its own retries off. Reported per minute: successes (goal: RPM within 5%), 429s,
and whether every 429 carried a ``retry-after`` and every response consistent
``anthropic-ratelimit-requests-*`` headers (limit = RPM, 0 <= remaining <= limit).

    .venv/bin/python bench/rpm.py [--rpm 120] [--minutes 1] [--senders 8]

Prints a table and writes ``bench/results/rpm.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import anthropic

from _common import local_api_process, print_table, save

MODEL = "claude-haiku-4-5"


class Counts:
    def __init__(self) -> None:
        self.ok = 0
        self.limited = 0
        self.no_retry_after = 0
        self.bad_headers = 0


async def one(client: anthropic.AsyncAnthropic, counts: Counts, rpm: int) -> bool:
    try:
        raw = await client.messages.with_raw_response.create(
            model=MODEL, max_tokens=1, messages=[{"role": "user", "content": "hi"}])
        headers = raw.headers
        ok = True
    except anthropic.RateLimitError as err:
        headers = err.response.headers
        ok = False
        if not headers.get("retry-after", "").isdigit():
            counts.no_retry_after += 1
    limit = headers.get("anthropic-ratelimit-requests-limit")
    remaining = headers.get("anthropic-ratelimit-requests-remaining")
    if limit != str(rpm) or remaining is None or not 0 <= int(remaining) <= rpm:
        counts.bad_headers += 1
    if ok:
        counts.ok += 1
    else:
        counts.limited += 1
    return ok


async def measure(url: str, *, rpm: int, minutes: int, senders: int) -> dict[str, Any]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key="bench", max_retries=0)
    try:
        drain = Counts()
        while all(await asyncio.gather(*(one(client, drain, rpm) for _ in range(16)))):
            pass
        per_minute: list[dict[str, Any]] = []
        for _ in range(minutes):
            counts = Counts()
            deadline = time.monotonic() + 60.0

            async def sender(counts: Counts = counts, deadline: float = deadline) -> None:
                while time.monotonic() < deadline:
                    await one(client, counts, rpm)

            await asyncio.gather(*(sender() for _ in range(senders)))
            per_minute.append({
                "successes": counts.ok, "rate_limited": counts.limited,
                "error_pct": round(100 * (counts.ok - rpm) / rpm, 2),
                "within_5pct": abs(counts.ok - rpm) <= 0.05 * rpm,
                "429_without_retry_after": counts.no_retry_after,
                "inconsistent_headers": counts.bad_headers,
            })
        return {"burst_drained": drain.ok, "minutes": per_minute}
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rpm", type=int, default=120)
    ap.add_argument("--minutes", type=int, default=1)
    ap.add_argument("--senders", type=int, default=8)
    args = ap.parse_args()
    with local_api_process("--rpm", str(args.rpm)) as url:
        result = asyncio.run(measure(url, rpm=args.rpm, minutes=args.minutes,
                                     senders=args.senders))
    rows = [[i + 1, m["successes"], f"{m['error_pct']:+.1f}%", "yes" if m["within_5pct"] else "NO",
             m["rate_limited"], m["429_without_retry_after"], m["inconsistent_headers"]]
            for i, m in enumerate(result["minutes"])]
    print_table(f"--rpm {args.rpm}, {args.senders} senders as fast as they can (burst of "
                f"{result['burst_drained']} drained first); goal: {args.rpm} +- 5% a minute",
                ["minute", "successes", "vs rpm", "within 5%", "429s", "429s w/o retry-after",
                 "bad headers"], rows)
    save("rpm", {"rpm": args.rpm, "senders": args.senders, **result})


if __name__ == "__main__":
    main()
