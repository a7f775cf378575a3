"""Benchmark: several gateway processes on one account.

1. **Two processes, one limit.** Two ``laneway serve`` processes on one PostgreSQL ledger
   in front of one local API limited to ``--rpm`` requests per minute (it counts its
   429s); a client keeps ``--concurrency`` requests waiting at each. After a warm-up
   (the processes learn the limit from the headers and find their shares), the upstream's
   answers over ``--seconds`` are counted: together they should use >= 95% of the limit
   and see <= 1% 429s (counted over the whole run, warm-up included).
2. **--workers N, many new streams.** ``laneway serve --workers N`` in front of the
   local API (echo engine with ``--ttft-ms`` latency, no limit); bursts of ``--streams``
   streams at once, each on a new connection, straight to the local API and through the
   gateway, alternating. "Added" is the gateway's TTFT percentile minus the direct one;
   the CPU the gateway's processes spent per stream predicts what a machine with more
   cores gives (streams per second per core = 1000 / CPU ms per stream).

    .venv/bin/python bench/gateway_processes.py [--rpm 600] [--seconds 60] [--workers 4]

PostgreSQL is ``$LANEWAY_TEST_PG`` or a private server started from Debian's binaries.
Prints tables and writes ``bench/results/gateway_processes.json``. On a 2-core machine
the client, the gateway processes, the local API and PostgreSQL share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server

import httpx
import psutil

import pgserver
from _common import free_port, local_api_process, percentile, print_table, save
from laneway.local import LocalConfig, start_local
from sse import first_token_ms

MODEL = "claude-haiku-4-5"
PROMPT = " ".join(f"word{i}" for i in range(20))
GOAL_USE, GOAL_429 = 0.95, 0.01
GOAL_P99_ADDED_MS = 20.0


@contextmanager
def serve(upstream: str, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``laneway serve ARGS`` in front of ``upstream``; yields the process and its URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_BASE_URL"] = upstream
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "serve", "--port", str(port), "--provider",
         "anthropic", "--model", MODEL, *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("laneway serve did not start")
            time.sleep(0.1)
        yield proc, url
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def drive(urls: list[str], *, concurrency: int | list[int], seconds: float,
                answered: dict[str, int]) -> None:
    """Keep ``concurrency`` requests (one number, or one per URL) at each gateway for
    ``seconds``."""
    each = concurrency if isinstance(concurrency, list) else [concurrency] * len(urls)
    stop_at = time.monotonic() + seconds
    body = {"model": MODEL, "max_tokens": 16,
            "messages": [{"role": "user", "content": "hello"}]}

    async def loop(client: httpx.AsyncClient, url: str) -> None:
        while time.monotonic() < stop_at:
            try:
                r = await client.post(url + "/v1/messages", json=body,
                                      timeout=max(1.0, stop_at - time.monotonic()))
            except httpx.TimeoutException:
                return
            key = f"{url} {r.status_code}"
            answered[key] = answered.get(key, 0) + 1

    limits = httpx.Limits(max_connections=sum(each) + 10)
    async with httpx.AsyncClient(limits=limits, headers={"x-api-key": "bench"}) as client:
        await asyncio.gather(*(loop(client, url) for url, n in zip(urls, each, strict=True)
                               for _ in range(n)))


def two_processes(dsn: str, args: argparse.Namespace) -> dict[str, Any]:
    local = start_local(LocalConfig(rpm=args.rpm))
    stats = local.api.stats
    try:
        with serve(local.base_url, "--db", dsn) as (_, a), serve(local.base_url, "--db", dsn) as (_, b):
            answered: dict[str, int] = {}

            async def run() -> tuple[dict[str, int], dict[str, int], float]:
                load = [args.concurrency, args.concurrency_b or args.concurrency]
                task = asyncio.create_task(drive([a, b], concurrency=load,
                                                 seconds=args.warmup + args.seconds + 5,
                                                 answered=answered))
                await asyncio.sleep(args.warmup)
                first, t0 = dict(stats), time.monotonic()
                await asyncio.sleep(args.seconds)
                last, t1 = dict(stats), time.monotonic()
                await task
                return first, last, t1 - t0

            first, last, window_s = asyncio.run(run())
    finally:
        local.stop()
    ok = last["ok"] - first["ok"]
    allowed = args.rpm * window_s / 60.0
    return {"rpm": args.rpm, "load": [args.concurrency, args.concurrency_b],
            "window_s": round(window_s, 1), "ok_in_window": ok,
            "use_of_limit": round(ok / allowed, 4),
            "upstream_requests": stats["requests"], "upstream_429": stats["rate_limited"],
            "share_429": round(stats["rate_limited"] / max(1, stats["requests"]), 4),
            "answered": answered}


def cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds of ``proc`` and its children (the workers)."""
    p = psutil.Process(proc.pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        try:
            t = q.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


async def burst(url: str, path: str, n: int) -> list[float]:
    body = {"model": MODEL, "max_tokens": 256, "stream": True,
            "messages": [{"role": "user", "content": PROMPT}]}
    return list(await asyncio.gather(*(first_token_ms(url, path, body, b'"text_delta"')
                                       for _ in range(n))))


def many_streams(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, \
            local_api_process("--ttft-ms", str(args.ttft_ms), "--token-ms", "10") as local, \
            serve(local, "--db", str(Path(tmp) / "ledger.db"),
                  "--workers", str(args.workers)) as (proc, url):
        async def run() -> tuple[list[float], list[float], float]:
            direct: list[float] = []
            served: list[float] = []
            for _ in range(2):  # warm every worker up
                await burst(url, "/v1/messages", args.streams)
            spent = 0.0
            for _ in range(args.rounds):
                direct += await burst(local, "/v1/messages", args.streams)
                before = cpu_s(proc)
                served += await burst(url, "/v1/messages", args.streams)
                spent += cpu_s(proc) - before
            return direct, served, spent

        direct, served, spent = asyncio.run(run())
    cpu_ms = spent * 1000 / len(served)
    return {"workers": args.workers, "streams_at_once": args.streams,
            "streams": len(served), "echo_ttft_ms": args.ttft_ms,
            "direct_p50_ms": round(percentile(direct, 50), 1),
            "direct_p99_ms": round(percentile(direct, 99), 1),
            "served_p50_ms": round(percentile(served, 50), 1),
            "served_p99_ms": round(percentile(served, 99), 1),
            "added_p50_ms": round(percentile(served, 50) - percentile(direct, 50), 1),
            "added_p99_ms": round(percentile(served, 99) - percentile(direct, 99), 1),
            "gateway_cpu_ms_per_stream": round(cpu_ms, 2),
            # A burst of N streams needs N x CPU ms of gateway work; spread over the
            # cores the workers get, the last stream's first token waits about that.
            "predicted_p99_added_ms_on_4_cores": round(args.streams * cpu_ms / 4, 1),
            "cores_for_goal": round(args.streams * cpu_ms / GOAL_P99_ADDED_MS, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rpm", type=int, default=600)
    ap.add_argument("--seconds", type=float, default=60.0, help="Measured window.")
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=30, help="Requests kept at each.")
    ap.add_argument("--concurrency-b", type=int, default=None,
                    help="Requests kept at the second (default: as many).")
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--streams", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ttft-ms", type=float, default=50.0)
    ap.add_argument("--skip", choices=["processes", "streams"], default=None)
    args = ap.parse_args()
    out: dict[str, Any] = {"benchmark": "gateway_processes", "cpus": os.cpu_count()}
    if args.skip != "processes":
        dsn = os.environ.get(pgserver.ENV_DSN)
        server = None if dsn else pgserver.TempPostgres.start(fast=False)
        try:
            out["two_processes"] = p = two_processes(dsn or server.dsn, args)  # type: ignore[union-attr]
        finally:
            if server is not None:
                server.stop()
        print_table(f"two laneway serve processes, one PostgreSQL ledger, upstream rpm "
                    f"{args.rpm}", ["window s", "answered", "% of limit", "429s",
                                    "% 429"],
                    [[p["window_s"], p["ok_in_window"], f"{100 * p['use_of_limit']:.1f}",
                      p["upstream_429"], f"{100 * p['share_429']:.2f}"]])
        print(f"goal: >= {100 * GOAL_USE:g}% of the limit, <= {100 * GOAL_429:g}% 429s: "
              f"{'met' if p['use_of_limit'] >= GOAL_USE and p['share_429'] <= GOAL_429 else 'NOT met'}")
    if args.skip != "streams":
        out["many_streams"] = s = many_streams(args)
        print_table(f"laneway serve --workers {args.workers}: {args.streams} new streams at "
                    f"once, TTFT ms (echo ttft {args.ttft_ms:g} ms)",
                    ["direct p50", "direct p99", "served p50", "served p99", "added p50",
                     "added p99", "CPU ms/stream"],
                    [[s["direct_p50_ms"], s["direct_p99_ms"], s["served_p50_ms"],
                      s["served_p99_ms"], s["added_p50_ms"], s["added_p99_ms"],
                      s["gateway_cpu_ms_per_stream"]]])
        print(f"goal: <= {GOAL_P99_ADDED_MS:g} ms p99 added (on cores for --workers "
              f"{args.workers}); {os.cpu_count()} cores here, shared with the client and "
              f"the upstream. At {s['gateway_cpu_ms_per_stream']} CPU ms per stream, "
              f"{args.streams} streams at once predict "
              f"{s['predicted_p99_added_ms_on_4_cores']} ms on 4 free cores; the goal "
              f"needs about {s['cores_for_goal']} cores")
    save("gateway_processes", out)


if __name__ == "__main__":
    main()
