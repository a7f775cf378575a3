"""The relay's CPU and time added (issue 28 goal 1), before and after, side by side.

One upstream, ``laneway local --engine echo --ttft-ms 100 --token-ms 2`` (its own
process, this tree's code), and ``laneway serve --provider anthropic`` in front of it
from each checkout (``--before`` a ``git worktree`` of the baseline's ``src``,
``--after`` this tree's), on a fresh SQLite ledger, with a budgeted key that has a rate
(as issue 24's hop: the reservation and the rate swap are in the path). Per round, each
side in turn (the order alternates):

- one at a time: ``--one`` streams, one after the other: serve's CPU per stream;
- 50 at once: ``--bursts`` bursts of 50 new streams (new connections), straight to the
  upstream and through the gateway in turn: serve's CPU per stream, and the time to the
  first text delta, added by the gateway (p50 and p99 of through minus direct);
- idle: serve's CPU over ``--idle-s`` seconds with nothing to do (last round only).

Streams are read raw with httpx (the client's own CPU is kept small: it shares the
machine); each is ``max_tokens`` 64. Prints a table of medians over the rounds (and
each round's figures), writes ``bench/results/relay.json``.

    git worktree add --detach /tmp/lw-base 207e4bf
    .venv/bin/python bench/relay.py --before /tmp/lw-base/src
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

import httpx

from _common import (
    checkout_env,
    free_port,
    percentile,
    print_table,
    save,
    stop_process,
    wait_up,
)

HERE = Path(__file__).resolve().parent
MODEL = "claude-haiku-4-5"
BODY = {"model": MODEL, "max_tokens": 64, "stream": True,
        "messages": [{"role": "user", "content": "word " * 60}]}


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def upstream(src: Path) -> Iterator[tuple[str, int]]:
    """The echo upstream from ``src``: its URL and its pid."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "local", "--engine", "echo", "--port", str(port),
         "--ttft-ms", "100", "--token-ms", "2"], env=checkout_env(src),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/v1/models", proc, "the upstream")
        yield url, proc.pid
    finally:
        stop_process(proc)


@contextmanager
def gateway(src: Path, up: str, tmp: Path) -> Iterator[tuple[str, str, int]]:
    """serve from ``src`` on a new ledger; yields its URL, a budgeted key, its pid."""
    db = tmp / f"relay-{time.monotonic_ns()}.db"
    env = checkout_env(src, ANTHROPIC_BASE_URL=up, ANTHROPIC_API_KEY="k")
    secret = subprocess.run(
        [sys.executable, "-m", "laneway", "keys", "create", "relay", "--budget-usd", "1000",
         "--rpm", "100000", "--db", str(db)], env=env, check=True, capture_output=True,
        text=True).stdout.strip().splitlines()[-1].strip()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "laneway", "serve", "--port", str(port), "--provider",
         "anthropic", "--db", str(db)], env=env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url + "/healthz", proc, "serve", timeout_s=90)
        yield url, secret, proc.pid
    finally:
        stop_process(proc)


async def stream(http: httpx.AsyncClient, url: str, key: str) -> float:
    """One stream read to its end; seconds to its first text delta."""
    t0 = time.monotonic()
    first = None
    async with http.stream("POST", url + "/v1/messages", json=BODY,
                           headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
                           ) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {(await r.aread())[:200]!r}")
        async for chunk in r.aiter_bytes():
            if first is None and b"content_block_delta" in chunk:
                first = time.monotonic() - t0
    if first is None:
        raise RuntimeError("a stream without a text delta")
    return first


async def one_at_a_time(url: str, key: str, n: int) -> None:
    async with httpx.AsyncClient(timeout=60) as http:
        for _ in range(n):
            await stream(http, url, key)


async def burst(url: str, key: str, n: int = 50) -> list[float]:
    """``n`` new streams at once (a new client: new connections)."""
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        return list(await asyncio.gather(*[stream(http, url, key) for _ in range(n)]))


def side(src: Path, up: str, tmp: Path, args: argparse.Namespace, idle: bool
         ) -> dict[str, Any]:
    with gateway(src, up, tmp) as (url, key, pid):
        asyncio.run(one_at_a_time(url, key, 20))  # warm
        asyncio.run(burst(url, key))
        cpu0 = cpu_s(pid)
        asyncio.run(one_at_a_time(url, key, args.one))
        cpu_one = (cpu_s(pid) - cpu0) / args.one
        direct: list[float] = []
        through: list[float] = []
        cpu_50 = 0.0
        for _ in range(args.bursts):
            direct += asyncio.run(burst(up, "k"))
            cpu0 = cpu_s(pid)
            through += asyncio.run(burst(url, key))
            cpu_50 += cpu_s(pid) - cpu0
        out = {"cpu_ms_1": round(cpu_one * 1e3, 3),
               "cpu_ms_50": round(cpu_50 / (50 * args.bursts) * 1e3, 3),
               "ttft_p50_added_ms": round((percentile(through, 50)
                                           - percentile(direct, 50)) * 1e3, 1),
               "ttft_p99_added_ms": round((percentile(through, 99)
                                           - percentile(direct, 99)) * 1e3, 1),
               "direct_ttft_p50_ms": round(percentile(direct, 50) * 1e3, 1),
               "load": os.getloadavg()[0]}
        if idle:
            time.sleep(2)
            cpu0 = cpu_s(pid)
            time.sleep(args.idle_s)
            out["idle_pct_core"] = round((cpu_s(pid) - cpu0) / args.idle_s * 100, 3)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, required=True, help="the baseline's src")
    ap.add_argument("--after", type=Path, default=HERE.parent / "src")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", type=int, default=100, help="streams one at a time")
    ap.add_argument("--bursts", type=int, default=4, help="bursts of 50 new streams")
    ap.add_argument("--idle-s", type=float, default=60.0)
    ap.add_argument("--name", default="relay")
    args = ap.parse_args()
    sides = {"before": args.before.resolve(), "after": args.after.resolve()}
    rounds: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    out: dict[str, Any] = {**{k: str(v) for k, v in sides.items()}, "rounds": rounds}
    with tempfile.TemporaryDirectory() as tmp, upstream(sides["after"]) as (up, _pid):
        for i in range(args.rounds):
            order = ["before", "after"] if i % 2 == 0 else ["after", "before"]
            for name in order:
                rounds[name].append(side(sides[name], up, Path(tmp), args,
                                         idle=i == args.rounds - 1))
                print(name, rounds[name][-1], flush=True)
    figures = ["cpu_ms_1", "cpu_ms_50", "ttft_p50_added_ms", "ttft_p99_added_ms",
               "idle_pct_core", "direct_ttft_p50_ms", "load"]
    medians = {name: {f: percentile([r[f] for r in got if f in r], 50) for f in figures}
               for name, got in rounds.items()}
    out["medians"] = medians
    ratio = {f: round(medians["after"][f] / medians["before"][f], 2)
             if medians["before"][f] else "-" for f in figures[:4]}
    out["after_over_before"] = ratio
    print_table(f"relay ({args.rounds} rounds, medians; load at the end "
                f"{os.getloadavg()})", ["", *figures],
                [[n, *[medians[n][f] for f in figures]] for n in ("before", "after")]
                + [["after/before", *[ratio.get(f, "") for f in figures]]])
    save(args.name, out)


if __name__ == "__main__":
    main()
