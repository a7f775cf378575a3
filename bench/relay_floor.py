"""The floor under a relayed stream's CPU (issue 28, goal 1): what the SDK alone costs.

The relay must send each request upstream with the ``anthropic`` SDK (its public
surface: ``client.post`` with the raw-response option, as ``laneway serve`` does) and read
the stream back through it. This bench measures, side by side in one run, against one
upstream (``laneway local --engine echo --ttft-ms 100 --token-ms 2``), the CPU of a
stream (one at a time, or ``--at-once`` N together), at ``max_tokens`` 1 (the fixed part:
~6 events) and 64 (~70 events):

- ``serve`` (this tree; ``--before SRC``: a baseline checkout too): the gateway's whole
  process, per stream relayed to a raw httpx client, as ``bench/relay.py`` measures it;
- ``SDK only``: this process sending the same request with the SDK's client (its aiohttp
  transport, as serve's) and reading the raw stream to its end, nothing relayed;
- ``aiohttp only``: the same with aiohttp directly, no SDK (what the rules rule out);
- ``upstream``: the upstream's own process, per stream (it generates the events).

If the SDK's part alone is more than 0.4x of the baseline's whole relay, goal 1's 0.4x
cannot be had while the SDK sends the request. Rounds alternate the order; medians.
Prints a table and writes ``bench/results/relay_floor_N.json`` (N: ``--at-once``).

    .venv/bin/python bench/relay_floor.py [--before /tmp/lw-base/src] [--n 200] [--at-once 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import aiohttp
import httpx

from _common import percentile, print_table, save
from laneway.provider import relay as provider_relay
from laneway.provider.client import Provider
from relay import HERE, MODEL, cpu_s, gateway, upstream

HEADERS = {"anthropic-version": "2023-06-01", "content-type": "application/json"}


def body(max_tokens: int) -> bytes:
    return json.dumps({"model": MODEL, "max_tokens": max_tokens, "stream": True,
                       "messages": [{"role": "user", "content": "word " * 60}]}).encode()


def groups(n: int, at_once: int) -> tuple[int, int]:
    """Unmeasured and measured groups of ``at_once`` for about 10 and ``n`` calls."""
    return max(1, 10 // at_once), max(1, n // at_once)


def measured(one: Callable[[], Awaitable[None]], n: int, at_once: int,
             cpu: Callable[[], float]) -> float:
    """CPU (ms, by ``cpu``: seconds) per call of ``one``, ``n`` calls ``at_once`` at a
    time, after ~10 unmeasured."""
    loop = asyncio.get_event_loop()

    async def group() -> None:
        await asyncio.gather(*[one() for _ in range(at_once)])
    warm, timed = groups(n, at_once)
    for _ in range(warm):
        loop.run_until_complete(group())
    c0 = cpu()
    for _ in range(timed):
        loop.run_until_complete(group())
    return (cpu() - c0) / (timed * at_once) * 1e3


def sdk_only(up: str, content: bytes, n: int, at_once: int) -> float:
    """The SDK's client as serve makes it, sending as serve sends, reading raw."""
    provider = Provider.at(up, api_key="k")

    async def one() -> None:
        response = await provider_relay.send(provider, "POST", "/v1/messages",
                                             content=content, headers=HEADERS)
        async for _chunk in response.aiter_raw():
            pass
        await response.aclose()
    try:
        return measured(one, n, at_once, time.process_time)
    finally:
        asyncio.get_event_loop().run_until_complete(provider.client.close())


def aiohttp_only(up: str, content: bytes, n: int, at_once: int) -> float:
    session = asyncio.get_event_loop().run_until_complete(_session())

    async def one() -> None:
        async with session.post(up + "/v1/messages", data=content,
                                headers={**HEADERS, "x-api-key": "k"}) as r:
            async for _chunk in r.content.iter_any():
                pass
    try:
        return measured(one, n, at_once, time.process_time)
    finally:
        asyncio.get_event_loop().run_until_complete(session.close())


async def _session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession()


def through(url: str, key: str, content: bytes, n: int, pid: int, at_once: int) -> float:
    """``pid``'s CPU (ms) per stream relayed through ``url``."""
    http = httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=at_once))

    async def one() -> None:
        async with http.stream("POST", url + "/v1/messages", content=content,
                               headers={**HEADERS, "x-api-key": key}) as r:
            if r.status_code != 200:
                raise RuntimeError(f"{url}: {r.status_code}")
            async for _chunk in r.aiter_raw():
                pass
    try:
        return measured(one, n, at_once, lambda: cpu_s(pid))
    finally:
        asyncio.get_event_loop().run_until_complete(http.aclose())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", type=Path, help="a baseline checkout's src (serve before)")
    ap.add_argument("--after", type=Path, default=HERE.parent / "src")
    ap.add_argument("--n", type=int, default=200, help="streams per figure per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--at-once", type=int, default=1, help="streams at once (1: one at a "
                    "time; 50: bursts of 50)")
    args = ap.parse_args()
    asyncio.set_event_loop(asyncio.new_event_loop())
    sides = {"serve": args.after.resolve()}
    if args.before is not None:
        sides = {"serve before": args.before.resolve(), **sides}
    got: dict[str, dict[int, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, upstream(sides["serve"]) as (up, up_pid), \
            contextlib.ExitStack() as stack:
        gateways = {name: stack.enter_context(gateway(src, up, Path(tmp)))
                    for name, src in sides.items()}
        for i in range(args.rounds):
            for mt in (1, 64):
                content = body(mt)
                order: list[tuple[str, Callable[[], float]]] = [
                    *[(name, partial(through, g[0], g[1], content, args.n, g[2], args.at_once))
                      for name, g in gateways.items()],
                    ("SDK only", partial(sdk_only, up, content, args.n, args.at_once)),
                    ("aiohttp only", partial(aiohttp_only, up, content, args.n, args.at_once)),
                ]
                if i % 2:
                    order.reverse()
                for name, measure in order:
                    if name == "aiohttp only":  # the upstream's CPU beside it
                        c0 = cpu_s(up_pid)
                        value = measure()
                        got.setdefault("upstream", {}).setdefault(mt, []).append(
                            (cpu_s(up_pid) - c0) / (sum(groups(args.n, args.at_once)) * args.at_once) * 1e3)
                    else:
                        value = measure()
                    got.setdefault(name, {}).setdefault(mt, []).append(value)
            print(f"round {i + 1}: " + ", ".join(
                f"{k} {v[1][-1]:.2f}/{v[64][-1]:.2f}" for k, v in got.items()), flush=True)
    med = {name: {mt: round(percentile(v, 50), 3) for mt, v in per.items()}
           for name, per in got.items()}
    rows = [[name, med[name][1], med[name][64]] for name in med]
    if "serve before" in med:
        rows.append(["0.4x serve before (the goal)",
                     round(0.4 * med["serve before"][1], 3),
                     round(0.4 * med["serve before"][64], 3)])
    print_table(f"CPU ms per stream, {args.at_once} at once ({args.rounds} rounds, medians; load "
                f"{os.getloadavg()[0]:.1f})", ["", "max_tokens 1", "max_tokens 64"], rows)
    save(f"relay_floor_{args.at_once}", {"at_once": args.at_once, "medians": med, "rounds": got, "sides": {k: str(v) for k, v in
                                                                 sides.items()},
                         "n": args.n, "load": os.getloadavg()})


if __name__ == "__main__":
    main()
