"""Benchmark: how idle listeners of a run's events slow ``GET /v1/runs`` down.

Processes on this machine: the local API (echo engine), ``laneway serve`` on a SQLite
ledger holding a run enqueued with ``laneway run --no-work`` (it waits for workers, so
its event streams never end), and this client. ``GET /v1/runs`` is timed (sequential
requests, median and p95) with no listener, then with ``--listeners`` clients on
``/v1/runs/idle/events`` (one asyncio httpx client, one connection each). The server's
CPU use while the listeners sit idle is sampled too. Every listener of a run shares
one ledger poll (``server/events_hub.py``); before that, each polled twice a second.

    .venv/bin/python bench/events.py [--listeners 500] [--requests 40]

Prints a table and writes ``bench/results/events.json``.
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
import psutil

from _common import local_api_process, percentile, print_table, save, serve_process


def enqueue(local_url: str, folder: Path) -> None:
    jobs = folder / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"j{i}", "prompt": f"job {i}"}) + "\n"
                            for i in range(100)))
    env = {**os.environ, "ANTHROPIC_BASE_URL": local_url}
    subprocess.run([sys.executable, "-m", "laneway", "run", str(jobs), "--no-work",
                    "--run", "idle", "--db", str(folder / "ledger.db"), "-q"],
                   env=env, check=True, capture_output=True, timeout=60)


async def list_latency(url: str, n: int) -> dict[str, float]:
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            r = await http.get("/v1/runs")
            times.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
    return {"p50_ms": round(percentile(times, 50), 1), "p95_ms": round(percentile(times, 95), 1),
            "max_ms": round(max(times), 1)}


async def listen(http: httpx.AsyncClient, opened: list[int]) -> None:
    async with http.stream("GET", "/v1/runs/idle/events") as r:
        r.raise_for_status()
        opened.append(1)
        async for _ in r.aiter_lines():
            pass


async def measure(url: str, server: psutil.Process, listeners: int,
                  requests: int) -> list[dict[str, Any]]:
    await list_latency(url, 10)  # warm up
    rows = [{"listeners": 0, **await list_latency(url, requests)}]
    opened: list[int] = []
    limits = httpx.Limits(max_connections=listeners + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        tasks = [asyncio.create_task(listen(http, opened)) for _ in range(listeners)]
        deadline = time.monotonic() + 60
        while len(opened) < listeners:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(opened)} of {listeners} listeners opened")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)  # settle
        cpu0, t0 = sum(server.cpu_times()[:2]), time.monotonic()
        await asyncio.sleep(2.0)  # idle listeners only
        idle_cpu = (sum(server.cpu_times()[:2]) - cpu0) / (time.monotonic() - t0)
        row = {"listeners": listeners, **await list_latency(url, requests),
               "server_cpu_idle_pct": round(idle_cpu * 100, 1)}
        rows.append(row)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listeners", type=int, default=500)
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, local_api_process() as local_url:
        enqueue(local_url, Path(tmp))
        proc, url = serve_process(local_url, Path(tmp) / "ledger.db")
        try:
            rows = asyncio.run(measure(url, psutil.Process(proc.pid), args.listeners,
                                       args.requests))
        finally:
            proc.terminate()
            proc.wait(timeout=15)
    print_table("GET /v1/runs with idle listeners on /v1/runs/idle/events",
                ["listeners", "p50 ms", "p95 ms", "max ms", "server CPU idle"],
                [[r["listeners"], r["p50_ms"], r["p95_ms"], r["max_ms"],
                  f"{r['server_cpu_idle_pct']}%" if "server_cpu_idle_pct" in r else "-"]
                 for r in rows])
    save("events", {"listeners": args.listeners, "requests": args.requests, "rows": rows})


if __name__ == "__main__":
    main()
