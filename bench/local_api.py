"""Benchmark: requests per second the local API serves, through the official SDK.

Starts the local API (echo engine, no latency, no limits) in its own process, so the
client and the server do not share a GIL, then for plain and streamed messages, each
``max_tokens`` and each concurrency level, keeps that many requests in flight for a
fixed time and counts the answers. The prompt is long enough (300 words) that every
echo answer is exactly ``max_tokens`` tokens.

    .venv/bin/python bench/local_api.py [--duration-s 3] [--concurrency 1,16,64]

Prints a table and writes ``bench/results/local_api.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "local_api.json"
MODEL = "claude-sonnet-5"
PROMPT = " ".join(f"word{i % 50}" for i in range(300))


@dataclass
class Cell:
    mode: str  # "plain" or "stream"
    max_tokens: int
    concurrency: int
    requests: int
    errors: int
    duration_s: float
    requests_per_s: float
    output_tokens_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    #: Streams only: time until the first text delta.
    ttft_p50_ms: float | None


def _serve(port: int) -> None:
    import uvicorn

    from laneway.local.app import create_app
    from laneway.local.config import LocalConfig

    app = create_app(LocalConfig(engine="echo"))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


async def _wait_ready(client: anthropic.AsyncAnthropic, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            await client.messages.count_tokens(
                model=MODEL, messages=[{"role": "user", "content": "hi"}])
            return
        except anthropic.APIConnectionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def _one(client: anthropic.AsyncAnthropic, *, stream: bool, max_tokens: int
               ) -> tuple[int, float | None]:
    """One request; returns (output tokens, seconds to the first delta if streamed)."""
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    if not stream:
        message = await client.messages.create(
            model=MODEL, max_tokens=max_tokens, messages=messages)
        return message.usage.output_tokens, None
    started = time.perf_counter()
    first: float | None = None
    output_tokens = 0
    events = await client.messages.create(
        model=MODEL, max_tokens=max_tokens, messages=messages, stream=True)
    async for event in events:
        if event.type == "content_block_delta" and first is None:
            first = time.perf_counter() - started
        elif event.type == "message_delta":
            output_tokens = event.usage.output_tokens
    return output_tokens, first


async def _cell(client: anthropic.AsyncAnthropic, *, stream: bool, max_tokens: int,
                concurrency: int, duration_s: float) -> Cell:
    latencies: list[float] = []
    ttfts: list[float] = []
    tokens = 0
    errors = 0
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal tokens, errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                out, ttft = await _one(client, stream=stream, max_tokens=max_tokens)
            except anthropic.APIError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)
            tokens += out
            if ttft is not None:
                ttfts.append(ttft)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return Cell(
        mode="stream" if stream else "plain", max_tokens=max_tokens, concurrency=concurrency,
        requests=len(latencies), errors=errors, duration_s=round(elapsed, 3),
        requests_per_s=round(len(latencies) / elapsed, 1),
        output_tokens_per_s=round(tokens / elapsed, 1),
        latency_p50_ms=round(_percentile(ms, 50), 2),
        latency_p99_ms=round(_percentile(ms, 99), 2),
        ttft_p50_ms=round(_percentile([x * 1000 for x in ttfts], 50), 2) if ttfts else None,
    )


async def _run(port: int, *, concurrencies: list[int], max_tokens_list: list[int],
               duration_s: float, console: Console) -> list[Cell]:
    async with anthropic.AsyncAnthropic(
        base_url=f"http://127.0.0.1:{port}", api_key="bench", max_retries=0, timeout=60
    ) as client:
        await _wait_ready(client)
        # Warm up connections and code paths.
        await _cell(client, stream=False, max_tokens=16, concurrency=8, duration_s=0.5)
        await _cell(client, stream=True, max_tokens=16, concurrency=8, duration_s=0.5)
        cells: list[Cell] = []
        for stream in (False, True):
            for max_tokens in max_tokens_list:
                for concurrency in concurrencies:
                    cell = await _cell(client, stream=stream, max_tokens=max_tokens,
                                       concurrency=concurrency, duration_s=duration_s)
                    console.print(f"{cell.mode:6} max_tokens={max_tokens:<4} "
                                  f"concurrency={concurrency:<3} {cell.requests_per_s:8.1f} req/s",
                                  highlight=False)
                    cells.append(cell)
        return cells


def _table(cells: list[Cell]) -> Table:
    table = Table(title="local API (echo engine, no latency) through the official SDK")
    for name in ("mode", "max_tokens", "concurrency", "requests", "errors", "req/s",
                 "output tok/s", "p50 ms", "p99 ms", "TTFT p50 ms"):
        table.add_column(name, justify="left" if name == "mode" else "right")
    for c in cells:
        table.add_row(
            c.mode, str(c.max_tokens), str(c.concurrency), str(c.requests), str(c.errors),
            f"{c.requests_per_s:.1f}", f"{c.output_tokens_per_s:.0f}",
            f"{c.latency_p50_ms:.1f}", f"{c.latency_p99_ms:.1f}",
            "" if c.ttft_p50_ms is None else f"{c.ttft_p50_ms:.1f}",
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=3.0,
                        help="seconds per measurement (default 3)")
    parser.add_argument("--concurrency", default="1,16,64",
                        help="requests in flight, comma-separated (default 1,16,64)")
    parser.add_argument("--max-tokens", default="16,256",
                        help="max_tokens values, comma-separated (default 16,256)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    max_tokens_list = [int(x) for x in args.max_tokens.split(",")]

    from laneway.local.server import free_port

    console = Console(stderr=True)
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=_serve, args=(port,),
                                                          daemon=True)
    server.start()
    try:
        cells = asyncio.run(_run(port, concurrencies=concurrencies,
                                 max_tokens_list=max_tokens_list,
                                 duration_s=args.duration_s, console=console))
    finally:
        server.terminate()
        server.join(timeout=10)

    Console(width=120).print(_table(cells))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "local_api",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "anthropic_sdk": anthropic.__version__},
        "setup": {"engine": "echo", "latency_ms": 0, "prompt_words": 300,
                  "server": "separate process, uvicorn, one worker",
                  "duration_s_per_cell": args.duration_s},
        "results": [asdict(c) for c in cells],
    }, indent=2) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
