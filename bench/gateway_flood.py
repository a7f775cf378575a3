"""Hostile clients against the gateway, and what the others notice (issue 24, goal 5).

``laneway local --engine echo`` (the upstream) and ``laneway serve --provider anthropic``
in front of it, each in its own process of this Python with ``PYTHONPATH`` set to
``--src`` (default: this tree's), so the same script measures two checkouts.

The others: ``--rate`` (20) requests a second through the SDK (``messages.create``,
max_tokens 5) for ``--seconds`` (10), alone, then during a flood from another process
(its CPU is its own, and reported; at the lowest priority, as a flood comes from other
machines), ``--rounds`` (3) times in turn:

- ``--idle`` (500) slow connections held open, each sending half a request head and then
  a byte every 2 s (re-opened when the server closes one);
- ``--floods`` (20) requests a second with ~30,000 headers (~390 KB of head) and no key;
- ``--bodies`` (2) requests a second of an 8 MB JSON body nested 1,000 deep (a 400: the
  depth is checked, off the event loop, before it is parsed).

Reported: the others' p50/p99/max with and without the flood (the goal: p99 ≤ 1.5x), and
the same of a control sent straight to the upstream at the same time (what the shared
machine alone does to a latency while the flood runs), the flood's answers (status
counts), the generator's CPU, and the server's CPU.

    .venv/bin/python bench/gateway_flood.py [--before ../before/src] [--src PATH/src]
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
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import httpx

from _common import checkout_env, free_port, percentile, print_table, save, wait_up

MODEL = "claude-haiku-4-5"
HERE = Path(__file__).resolve().parent
HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\ncontent-type: application/json\r\n"
FLOOD_HEADERS = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(30_000))
BIG_DEEP = (b'{"model": "claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", '
            b'"content": "' + b"x" * 8_000_000 + b'"}], "metadata": ' + b"[" * 1000
            + b"]" * 1000 + b"}")




@contextmanager
def _servers(src: Path) -> Iterator[tuple[str, str, int]]:
    """The upstream and the gateway: the gateway's URL, the upstream's, and the gateway's
    process id."""
    up, port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        upstream = subprocess.Popen(
            [sys.executable, "-m", "laneway", "local", "--engine", "echo", "--port", str(up)],
            env=checkout_env(src), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        serve = subprocess.Popen(
            [sys.executable, "-m", "laneway", "serve", "--provider", "anthropic",
             "--port", str(port), "--db", str(Path(tmp) / "ledger.db")],
            env=checkout_env(src, ANTHROPIC_API_KEY="k", ANTHROPIC_BASE_URL=f"http://127.0.0.1:{up}"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"http://127.0.0.1:{up}/v1/models", upstream, "the upstream")
            wait_up(f"http://127.0.0.1:{port}/healthz", serve, "laneway serve")
            yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{up}", serve.pid
        finally:
            for proc in (serve, upstream):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _others(url: str, rate: float, seconds: float) -> list[float]:
    """Latency of each of the others' requests (inf for a failure)."""
    client = anthropic.AsyncAnthropic(base_url=url, api_key="placeholder", max_retries=0,
                                      timeout=60)

    async def one(delay: float) -> float:
        await asyncio.sleep(delay)
        started = time.monotonic()
        try:
            await client.messages.create(model=MODEL, max_tokens=5, messages=[
                {"role": "user", "content": "hello"}])
        except anthropic.APIError:
            return float("inf")
        return time.monotonic() - started

    try:
        n = int(rate * seconds)
        return list(await asyncio.gather(*(one(i / rate) for i in range(n))))
    finally:
        await client.close()


# -- the flood (its own process) -------------------------------------------------------

async def _slow_connection(host: str, port: int, stop: float, seen: Counter[str]) -> None:
    while time.monotonic() < stop:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            seen["idle: refused"] += 1
            await asyncio.sleep(0.5)
            continue
        seen["idle: opened"] += 1
        try:
            writer.write(HEAD)
            while time.monotonic() < stop and not reader.at_eof():
                writer.write(b"X")
                await writer.drain()
                try:
                    data = await asyncio.wait_for(reader.read(4096), timeout=2.0)
                except TimeoutError:
                    continue
                if data:
                    seen[f"idle: {data[9:12].decode(errors='replace')}"] += 1
                break
        except OSError:
            pass
        finally:
            writer.close()
        seen["idle: closed by server"] += time.monotonic() < stop


async def _header_flood(host: str, port: int, seen: Counter[str]) -> None:
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(HEAD + FLOOD_HEADERS + b"\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(4096), timeout=30)
        seen[f"flood: {data[9:12].decode(errors='replace') or 'closed'}"] += 1
        writer.close()
    except (OSError, TimeoutError) as exc:
        seen[f"flood: {type(exc).__name__}"] += 1


async def _big_body(url: str, seen: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        try:
            r = await http.post("/v1/messages", content=BIG_DEEP,
                                headers={"content-type": "application/json"})
            seen[f"bodies: {r.status_code}"] += 1
        except httpx.HTTPError as exc:
            seen[f"bodies: {type(exc).__name__}"] += 1


async def _flood(url: str, idle: int, floods: float, bodies: float,
                 seconds: float) -> dict[str, Any]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stop = time.monotonic() + seconds
    seen: Counter[str] = Counter()
    tasks = [asyncio.create_task(_slow_connection(host, int(port), stop, seen))
             for _ in range(idle)]
    sent = 0
    every = max(1, round(floods / bodies)) if bodies else 0
    while time.monotonic() < stop:
        tasks.append(asyncio.create_task(_header_flood(host, int(port), seen)))
        sent += 1
        if every and sent % every == 0:
            tasks.append(asyncio.create_task(_big_body(url, seen)))
        await asyncio.sleep(1 / floods)
    await asyncio.gather(*tasks)
    return {"header_floods_sent": sent, "answers": dict(seen),
            "cpu_s": time.process_time()}


def flood_process(url: str, idle: int, floods: float, bodies: float,
                  seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), "--flood-only", url, "--idle", str(idle),
         "--floods", str(floods), "--bodies", str(bodies), "--seconds", str(seconds)],
        # At the lowest priority: a flood comes from other machines, and this one has
        # 2 cores to share (its CPU is reported all the same).
        stdout=subprocess.PIPE, text=True, preexec_fn=lambda: os.nice(19))


def _row(label: str, lat: list[float]) -> list[Any]:
    ok = [x for x in lat if x != float("inf")]
    return [label, len(lat), len(lat) - len(ok), f"{percentile(ok, 50) * 1000:.0f}",
            f"{percentile(ok, 99) * 1000:.0f}", f"{max(ok) * 1000:.0f}"]


async def _both(url: str, control: str, rate: float, seconds: float
                ) -> tuple[list[float], list[float]]:
    """The others through the gateway and, at the same time, straight to the upstream
    (the control: what the machine itself does to a latency meanwhile)."""
    through, straight = await asyncio.gather(_others(url, rate, seconds),
                                             _others(control, rate, seconds))
    return through, straight


def _ok(lat: list[float]) -> list[float]:
    return [x for x in lat if x != float("inf")]


def _ratio(loud: list[float], quiet: list[float]) -> float:
    if not _ok(loud) or not _ok(quiet):
        return float("inf")
    return percentile(_ok(loud), 99) / percentile(_ok(quiet), 99)


def _ms(lat: list[float]) -> dict[str, float]:
    ok = _ok(lat)
    return {"p50": percentile(ok, 50) * 1000, "p99": percentile(ok, 99) * 1000,
            "failed": len(lat) - len(ok)}


def run(src: Path, *, rate: float, seconds: float, idle: int, floods: float,
        bodies: float, rounds: int) -> dict[str, Any]:
    lat: dict[str, list[float]] = {"quiet": [], "loud": [], "quiet_direct": [],
                                   "loud_direct": []}
    generated: list[dict[str, Any]] = []
    cpu = {"alone": 0.0, "flood": 0.0}
    with _servers(src) as (url, control, pid):
        asyncio.run(_both(url, control, rate, 2))  # warm up
        for _ in range(rounds):  # alternated, so the machine's own noise hits both alike
            cpu0 = _cpu_s(pid)
            through, straight = asyncio.run(_both(url, control, rate, seconds))
            lat["quiet"] += through
            lat["quiet_direct"] += straight
            cpu1 = _cpu_s(pid)
            flood = flood_process(url, idle, floods, bodies, seconds + 2)
            time.sleep(1.0)  # the slow connections open
            through, straight = asyncio.run(_both(url, control, rate, seconds))
            lat["loud"] += through
            lat["loud_direct"] += straight
            out, _ = flood.communicate(timeout=120)
            cpu["alone"] += cpu1 - cpu0
            cpu["flood"] += _cpu_s(pid) - cpu1
            generated.append(json.loads(out))
            time.sleep(2.5)  # the lingering refused connections close
    answers: Counter[str] = Counter()
    for g in generated:
        answers.update(g["answers"])
    sent = sum(g["header_floods_sent"] for g in generated)
    gen_cpu = sum(g["cpu_s"] for g in generated)
    ratio = _ratio(lat["loud"], lat["quiet"])
    control_ratio = _ratio(lat["loud_direct"], lat["quiet_direct"])
    print_table(f"the others at {rate:g}/s, {rounds} x {seconds:g} s each (ms)",
                ["phase", "requests", "failed", "p50", "p99", "max"],
                [_row("through the gateway, alone", lat["quiet"]),
                 _row("through the gateway, flood", lat["loud"]),
                 _row("control: upstream, alone", lat["quiet_direct"]),
                 _row("control: upstream, flood", lat["loud_direct"])])
    print(f"\np99 during / alone: {ratio:.2f}x through the gateway (goal: <= 1.5x); "
          f"{control_ratio:.2f}x straight to the upstream (the machine's own share)")
    print_table("the flood", ["what", "count"],
                [[k, v] for k, v in sorted(answers.items())]
                + [["header floods sent", sent], ["generator CPU s", f"{gen_cpu:.1f}"],
                   ["server CPU s, alone", f"{cpu['alone']:.1f}"],
                   ["server CPU s, flood", f"{cpu['flood']:.1f}"]])
    return {"rate": rate, "seconds": seconds, "rounds": rounds, "idle": idle,
            "floods_per_s": floods, "bodies_per_s": bodies,
            "alone_ms": _ms(lat["quiet"]), "flood_ms": _ms(lat["loud"]),
            "control_alone_ms": _ms(lat["quiet_direct"]),
            "control_flood_ms": _ms(lat["loud_direct"]),
            "p99_ratio": ratio, "control_p99_ratio": control_ratio,
            "flood": {"answers": dict(answers), "header_floods_sent": sent,
                      "generator_cpu_s": gen_cpu},
            "server_cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, default=HERE.parent / "src")
    parser.add_argument("--before", type=Path, help="another checkout's src, run first "
                        "in the same run and shown side by side")
    parser.add_argument("--name", default="gateway_flood")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=500)
    parser.add_argument("--floods", type=float, default=20.0)
    parser.add_argument("--bodies", type=float, default=2.0)
    parser.add_argument("--flood-only", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_only:
        print(json.dumps(asyncio.run(_flood(args.flood_only, args.idle, args.floods,
                                            args.bodies, args.seconds))))
        return
    srcs = {"after": args.src.resolve()}
    if args.before is not None:
        srcs = {"before": args.before.resolve(), **srcs}
    results = {}
    for label, src in srcs.items():
        print(f"\n== {label}: {src}")
        results[label] = {"src": str(src), **run(
            src, rate=args.rate, seconds=args.seconds, idle=args.idle, floods=args.floods,
            bodies=args.bodies, rounds=args.rounds)}
    if len(results) > 1:
        _side_by_side(results)
    save(args.name, results if len(results) > 1 else results["after"])


def _side_by_side(results: dict[str, dict[str, Any]]) -> None:
    def row(what: str, get: Any) -> list[Any]:
        return [what, *(get(r) for r in results.values())]

    print_table("side by side", ["", *results], [
        row("p99 alone, ms", lambda r: f"{r['alone_ms']['p99']:.0f}"),
        row("p99 flood, ms", lambda r: f"{r['flood_ms']['p99']:.0f}"),
        row("p99 ratio (goal <= 1.5x)", lambda r: f"{r['p99_ratio']:.2f}x"),
        row("control p99 ratio", lambda r: f"{r['control_p99_ratio']:.2f}x"),
        row("failed alone / flood", lambda r: f"{r['alone_ms']['failed']} / "
                                              f"{r['flood_ms']['failed']}"),
        row("flood answers", lambda r: ", ".join(
            f"{k} {v}" for k, v in sorted(r["flood"]["answers"].items()))),
        row("generator CPU s", lambda r: f"{r['flood']['generator_cpu_s']:.1f}"),
        row("server CPU s alone / flood", lambda r: f"{r['server_cpu_s']['alone']:.1f} / "
                                                    f"{r['server_cpu_s']['flood']:.1f}")])

if __name__ == "__main__":
    main()
