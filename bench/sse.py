"""Benchmark: the time to first token that ``laneway serve`` adds to a chat stream, and
the server's memory, with 100 streams at once.

Three processes on this machine: the local API (echo engine, ``--ttft-ms``/``--token-ms``
latency), ``laneway serve`` pointed at it (``--provider anthropic`` with
``ANTHROPIC_BASE_URL``, so the server process holds only the server), and this client.
For each concurrency level, bursts of that many streams are sent both **directly** to
the local API (``POST /v1/messages``, ``stream: true``) and **through the server**
(``POST /v1/chat/stream``), alternating; the time to first token is measured from just
before the request to the first text delta. "Added" is the served percentile minus the
direct one. The server's resident memory is sampled every 5 ms throughout.

    .venv/bin/python bench/sse.py [--streams 100] [--rounds 5] [--concurrency 1,10,100]

Prints a table and writes ``bench/results/sse.json``. On a 2-core machine the client,
the server and the local API compete for the cores, so the numbers are an upper bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil

from _common import local_api_process, percentile, print_table, save, serve_process

MODEL = "claude-haiku-4-5"
PROMPT = " ".join(f"word{i}" for i in range(20))  # the echo answer: 20 deltas
GOAL_P99_ADDED_MS = 20.0


class MemorySampler:
    """Peak RSS of a process, sampled every ``interval_s`` on a thread."""

    def __init__(self, pid: int, interval_s: float = 0.005) -> None:
        self.proc = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_bytes = max(self.peak_bytes, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval_s)

    def cpu_s(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def rss(self) -> int:
        return int(self.proc.memory_info().rss)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def first_token_ms(url: str, path: str, body: dict[str, Any], marker: bytes) -> float:
    """Open a connection, POST ``body``, and return the ms until ``marker`` (the first text
    delta) arrives; then read the stream to its end.

    A raw HTTP/1.1 client on asyncio streams: a full client library spends more time
    per stream than the server under test does, and would measure itself.
    """
    host, port = url.removeprefix("http://").split(":")
    payload = json.dumps(body).encode()
    request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
               "x-api-key: bench\r\nanthropic-version: 2023-06-01\r\n"
               f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
               ).encode() + payload
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    ttft = float("nan")
    seen = b""
    try:
        writer.write(request)
        while chunk := await reader.read(65536):
            if ttft != ttft:
                seen += chunk
                if marker in seen:
                    ttft = (time.perf_counter() - started) * 1000
                elif b"event: error" in seen or (b" 200 OK" not in seen[:20] and len(seen) > 20):
                    raise RuntimeError(f"{path}: {seen[:300]!r}")
    finally:
        writer.close()
    if ttft != ttft:
        raise RuntimeError(f"{path}: no text delta in {seen[:300]!r}")
    return ttft


async def direct(url: str) -> float:
    """TTFT (ms) of one stream straight from the local API."""
    body = {"model": MODEL, "max_tokens": 256, "stream": True,
            "messages": [{"role": "user", "content": PROMPT}]}
    return await first_token_ms(url, "/v1/messages", body, b'"text_delta"')


async def served(url: str) -> float:
    """TTFT (ms) of one stream through ``laneway serve``."""
    return await first_token_ms(url, "/v1/chat/stream", {"message": PROMPT, "max_tokens": 256},
                                b'data: {"text"')


async def burst(fn: Callable[[str], Awaitable[float]], url: str, n: int) -> list[float]:
    return list(await asyncio.gather(*(fn(url) for _ in range(n))))


def ms(v: float) -> float:
    return round(v, 1)


async def measure(local_url: str, serve_url: str, sampler: MemorySampler, *,
                  levels: list[int], rounds: int) -> list[dict[str, Any]]:
    cells: list[dict[str, Any]] = []
    for _ in range(2):  # warm up imports and caches on both paths
        await burst(direct, local_url, 10)
        await burst(served, serve_url, 10)
    for n in levels:
        got: dict[str, list[float]] = {"direct": [], "served": []}
        per_round = rounds if n > 1 else rounds * 10
        cpu_s = 0.0
        for _ in range(per_round):
            got["direct"] += await burst(direct, local_url, n)
            before = sampler.cpu_s()
            got["served"] += await burst(served, serve_url, n)
            cpu_s += sampler.cpu_s() - before
        cell: dict[str, Any] = {"concurrency": n, "streams_per_path": len(got["direct"])}
        # CPU the server spent per stream: unlike latency, not inflated by other load.
        cell["server_cpu_ms_per_stream"] = round(cpu_s * 1000 / len(got["served"]), 2)
        for path, values in got.items():
            cell[f"{path}_ttft_p50_ms"] = ms(percentile(values, 50))
            cell[f"{path}_ttft_p99_ms"] = ms(percentile(values, 99))
        cell["added_p50_ms"] = ms(cell["served_ttft_p50_ms"] - cell["direct_ttft_p50_ms"])
        cell["added_p99_ms"] = ms(cell["served_ttft_p99_ms"] - cell["direct_ttft_p99_ms"])
        cell["server_peak_rss_mb"] = round(sampler.peak_bytes / 2**20, 1)
        cells.append(cell)
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--streams", type=int, default=100, help="Streams at once (top level).")
    ap.add_argument("--rounds", type=int, default=5, help="Bursts per level and path.")
    ap.add_argument("--concurrency", default="1,10", help="Lower levels to measure too.")
    ap.add_argument("--ttft-ms", type=float, default=50.0, help="Echo engine first-token wait.")
    ap.add_argument("--token-ms", type=float, default=10.0, help="Echo engine token gap.")
    args = ap.parse_args()
    levels = sorted({int(x) for x in args.concurrency.split(",") if x} | {args.streams})

    with tempfile.TemporaryDirectory() as tmp, \
            local_api_process("--ttft-ms", str(args.ttft_ms),
                              "--token-ms", str(args.token_ms)) as local_url:
        proc, serve_url = serve_process(local_url, Path(tmp) / "ledger.db", "--model", MODEL)
        try:
            with MemorySampler(proc.pid) as sampler:
                idle_rss = sampler.rss()
                cells = asyncio.run(measure(local_url, serve_url, sampler, levels=levels,
                                            rounds=args.rounds))
                final_rss = sampler.rss()
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    rows = [[c["concurrency"], c["streams_per_path"], c["direct_ttft_p50_ms"],
             c["direct_ttft_p99_ms"], c["served_ttft_p50_ms"], c["served_ttft_p99_ms"],
             c["added_p50_ms"], c["added_p99_ms"], c["server_cpu_ms_per_stream"]] for c in cells]
    print_table(
        f"laneway serve: time to first token (ms), echo engine ttft {args.ttft_ms:g} ms, "
        f"token gap {args.token_ms:g} ms",
        ["streams at once", "streams", "direct p50", "direct p99", "served p50",
         "served p99", "added p50", "added p99", "server CPU ms/stream"], rows)
    top = cells[-1]
    verdict = "met" if top["added_p99_ms"] <= GOAL_P99_ADDED_MS else "NOT met"
    print(f"\ngoal: <= {GOAL_P99_ADDED_MS:g} ms p99 added at {top['concurrency']} streams: "
          f"{verdict} ({top['added_p99_ms']} ms)")
    print(f"server memory: idle {idle_rss / 2**20:.1f} MB, peak "
          f"{sampler.peak_bytes / 2**20:.1f} MB, after {final_rss / 2**20:.1f} MB")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other work on the machine inflates every latency above)")
    save("sse", {
        "benchmark": "sse", "echo_ttft_ms": args.ttft_ms, "echo_token_ms": args.token_ms,
        "deltas_per_stream": len(PROMPT.split()), "rounds": args.rounds,
        "goal_p99_added_ms": GOAL_P99_ADDED_MS, "goal_met": verdict == "met",
        "server_rss_idle_mb": round(idle_rss / 2**20, 1),
        "server_rss_peak_mb": round(sampler.peak_bytes / 2**20, 1),
        "server_rss_after_mb": round(final_rss / 2**20, 1), "levels": cells,
    })


if __name__ == "__main__":
    main()
