"""The limit from the first second: the wall clock of a whole `laneway run` process
against a limit it is not told, starting on a drained bucket.

A local API (echo engine) limited to --rpm R (and optionally --itpm/--otpm) is drained
until it answers 429, then `python -m laneway run` is started on N jobs. The limit
allows N / (R / 60) seconds from an empty bucket; the figure is that time over the
process's wall clock (start-up, imports, store and learning included).

    python bench/first_second.py [--jobs 1200] [--rpm 1800] [--itpm N --otpm N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from _common import local_api_process, print_table, save, varied_jobs, write_jsonl

MODEL = "claude-haiku-4-5"


async def drain(url: str) -> int:
    """Send small requests until the server answers 429; returns how many were sent."""
    body = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}
    sent = 0
    limited = asyncio.Event()
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"x-api-key": "none",
                                          "anthropic-version": "2023-06-01"}) as client:
        async def one() -> None:
            nonlocal sent
            while not limited.is_set():
                r = await client.post("/v1/messages", json=body)
                sent += 1
                if r.status_code == 429:
                    limited.set()
        await asyncio.gather(*(one() for _ in range(32)))
    return sent


def one_run(args: argparse.Namespace, jobs: list[dict[str, Any]], tmp: Path) -> dict[str, Any]:
    extra = []
    for name in ("itpm", "otpm"):
        if getattr(args, name):
            extra += [f"--{name}", str(getattr(args, name))]
    with local_api_process("--rpm", str(args.rpm), *extra) as url:
        drained = asyncio.run(drain(url))
        src = write_jsonl(tmp / "in.jsonl", jobs)
        out = tmp / "out.jsonl"
        env = dict(os.environ, ANTHROPIC_BASE_URL=url, ANTHROPIC_API_KEY="none")
        start = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "laneway", "run", str(src), "-o", str(out),
             "--db", str(tmp / "ledger.db"), "--mode", "realtime", "--model", MODEL],
            env=env, capture_output=True, text=True)
        wall = time.monotonic() - start
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    ok = [r for r in rows if r["result"]["type"] == "succeeded"]
    used_in = sum(r["result"]["message"]["usage"]["input_tokens"] for r in ok)
    used_out = sum(r["result"]["message"]["usage"]["output_tokens"] for r in ok)
    # The request bucket starts drained; token buckets start full (the drain's requests
    # were tiny), so they allow their capacity at once and then their refill.
    ideal = len(jobs) / (args.rpm / 60)
    if args.itpm:
        ideal = max(ideal, (used_in - args.itpm) / (args.itpm / 60))
    if args.otpm:
        ideal = max(ideal, (used_out - args.otpm) / (args.otpm / 60))
    return {"jobs": len(jobs), "drained_with": drained, "exit": proc.returncode,
            "succeeded": len(ok), "input_tokens": used_in, "output_tokens": used_out, "wall_s": round(wall, 2),
            "limit_allows_s": round(ideal, 2), "share_of_limit": round(ideal / wall, 3),
            "stderr_tail": proc.stderr.strip().splitlines()[-3:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--jobs", type=int, default=1200)
    ap.add_argument("--rpm", type=int, default=1800)
    ap.add_argument("--itpm", type=int, default=None)
    ap.add_argument("--otpm", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    jobs = varied_jobs(args.jobs, min_out=16, max_out=64 if not args.otpm else 256)
    rows = []
    results = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            r = one_run(args, jobs, Path(tmp))
        results.append(r)
        rows.append([r["jobs"], args.rpm, r["exit"], r["succeeded"], r["wall_s"],
                     r["limit_allows_s"], r["share_of_limit"]])
    print_table("laneway run end to end on a drained bucket",
                ["jobs", "rpm", "exit", "ok", "wall s", "limit allows s", "share"], rows)
    save("first_second", {"args": vars(args), "runs": results})


if __name__ == "__main__":
    main()
