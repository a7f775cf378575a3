"""The gateway's figures (issue 14): ``laneway serve`` in front of a limited upstream.

The upstream is the local API (echo engine) in its own process (bench/_upstream.py:
``laneway local`` plus its counters); the gateway is ``laneway serve`` in its own
process, pointed at it with ANTHROPIC_BASE_URL (not told the limits: it learns them).

1. batch: the guide's batch code unchanged (AsyncAnthropic with the SDK's default
   retries, Semaphore(50), ``sleep(60)`` and try again on RateLimitError), 3,000 jobs
   against rpm 600 / itpm 200k / otpm 40k (0.3 s to first token + 10 ms a token),
   straight to the upstream and through the gateway. Use of the binding limit is
   computed as bench/ratelimit.py does: used / (a full bucket + the refill over the time).
2. person: a streamed request a second through the gateway, time to first text delta,
   idle and while the guide's batch code saturates the same quota through the gateway;
   the background's share of what the person leaves.
3. hop: time to first token straight vs through the gateway (upstream without limits),
   1 stream and 50 at once; and 1,000 relayed streams compared event by event with the
   upstream's own for the same request.

4. peers and naive (bench/_peers.py): laneway beside laneway before (``--before``) and
   LiteLLM's proxy (``--litellm``): CPU per request, TTFT added, idle CPU; the guide's
   naive code from a drained account.

    python bench/gateway.py [--quick] [--only batch|person|hop|peers|naive ...]
        [--litellm /tmp/litellm-venv/bin/python] [--before /tmp/lw-base2/src]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx

from _common import RESULTS, free_port, percentile, print_table, save, varied_jobs
from _guide import GuideBatch

LIMITS = {"rpm": 600, "itpm": 200_000, "otpm": 40_000}
LIMITED = ["--rpm", "600", "--itpm", "200000", "--otpm", "40000",
           "--ttft-ms", "300", "--token-ms", "10"]
MODEL = "claude-haiku-4-5"
HERE = Path(__file__).parent


def _wait_up(url: str, proc: subprocess.Popen[bytes], what: str, timeout_s: float = 180.0,
             ) -> None:
    deadline = time.monotonic() + timeout_s  # a loaded machine starts slowly
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@contextlib.contextmanager
def process(cmd: list[str], ready: str, what: str, env: dict[str, str] | None = None,
            timeout_s: float = 180.0) -> Iterator[subprocess.Popen[bytes]]:
    log = os.environ.get("BENCH_LOGS")  # a folder for the processes' stderr
    with contextlib.ExitStack() as stack:
        err: Any = subprocess.DEVNULL
        if log:
            err = stack.enter_context(
                open(Path(log) / f"{what.replace(' ', '_')}.{time.time():.0f}.log", "wb"))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                                env={**os.environ, **(env or {})})
    try:
        _wait_up(ready, proc, what, timeout_s)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@contextlib.contextmanager
def upstream(*args: str) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, str(HERE / "_upstream.py"), "--port", str(port), *args],
                 url + "/v1/laneway/stats", "the upstream"):
        yield url


@contextlib.contextmanager
def gateway(upstream_url: str) -> Iterator[tuple[str, int]]:
    """``laneway serve`` pointed at ``upstream_url``; yields its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp, process(
            [sys.executable, "-m", "laneway", "serve", "--port", str(port),
             "--db", str(Path(tmp) / "ledger.db")], url + "/v1/models", "laneway serve",
            env={"ANTHROPIC_BASE_URL": upstream_url, "ANTHROPIC_API_KEY": "x"}) as proc:
        yield url, proc.pid


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats_of(url: str) -> dict[str, Any]:
    return dict(httpx.get(url + "/v1/laneway/stats", timeout=10).json())


def share(used: dict[str, float], seconds: float, *,
          drained: dict[str, float] | None = None,
          minus: dict[str, float] | None = None) -> dict[str, float]:
    """Share of each limit ``used`` in ``seconds``: of the refill plus a full bucket (as
    bench/ratelimit.py), or plus what the bucket lost (``drained``: level at the start
    less level at the end, if more); ``minus`` is taken off what was allowed."""
    out = {}
    for key, limit in (("requests", LIMITS["rpm"]), ("input", LIMITS["itpm"]),
                       ("output", LIMITS["otpm"])):
        # A bucket that filled up meanwhile wasted its refill: that is no allowance.
        extra = limit if drained is None else max(0.0, drained[key])
        allowed = limit * seconds / 60.0 + extra
        out[key] = used[key] / max(1e-9, allowed - (minus or {}).get(key, 0.0))
    return out


def binding(shares: dict[str, float]) -> str:
    return max(shares, key=lambda k: shares[k])


def load() -> float:
    return round(os.getloadavg()[0], 2)


# -- 1. the guide's batch code, straight and through the gateway ------------------------------
async def batch_mode(name: str, jobs: list[dict[str, Any]], *, via_gateway: bool,
                     max_s: float) -> dict[str, Any]:
    with upstream(*LIMITED) as up, contextlib.ExitStack() as stack:
        target, pid = stack.enter_context(gateway(up)) if via_gateway else (up, 0)
        cpu0 = cpu_s(pid) if pid else 0.0
        load0 = load()
        guide = GuideBatch(target)
        out = await guide.run(jobs, concurrency=50, max_s=max_s)
        upstream_stats = stats_of(up)
        cpu = cpu_s(pid) - cpu0 if pid else None
    shares = share(out["used"], out["active_s"])
    bound = binding(shares)
    return {"mode": name, **out, "upstream": upstream_stats, "shares": shares,
            "binding": bound, "utilization": shares[bound], "gateway_cpu_s": cpu,
            "load": [load0, load()]}


async def part_batch(args: argparse.Namespace) -> dict[str, Any]:
    jobs = varied_jobs(args.jobs, min_out=16, max_out=128)
    modes = [await batch_mode("straight to the upstream", jobs, via_gateway=False,
                              max_s=args.max_seconds),
             await batch_mode("through the gateway", jobs, via_gateway=True,
                              max_s=args.max_seconds)]
    rows = []
    for m in modes:
        s = m["shares"]
        rows.append([m["mode"], f"{m['wall_s']:.0f}", m["ok"], m["failed"], m["unfinished"],
                     m["rate_limit_errors"], m["client_429"], m["upstream"]["completed"],
                     m["upstream"]["rate_limited"], m["binding"], f"{m['utilization']:.1%}",
                     f"{s['requests']:.0%}/{s['input']:.0%}/{s['output']:.0%}",
                     f"{m['load'][0]}-{m['load'][1]}"])
    print_table(
        f"The guide's batch code, {len(jobs)} jobs, Semaphore(50), sleep(60) on 429, vs rpm 600 /"
        " itpm 200k / otpm 40k; goal through the gateway: >= 95% of the binding limit, 0 "
        "failed, 0 429s", ["mode", "wall s", "ok", "failed", "unfinished", "RateLimitError",
                          "429s to client", "upstream answered", "upstream 429s", "binding",
                          "use", "rpm/itpm/otpm", "load"], rows)
    for m in modes:
        if m["stopped"]:
            print(f"{m['mode']}: stopped: {m['stopped']}")
    return {"jobs": len(jobs), "modes": modes}


# -- 2. a person and a background app on one quota ------------------------------------------
async def person(client: anthropic.AsyncAnthropic, seconds: int) -> list[dict[str, float]]:
    async def one(i: int) -> dict[str, float]:
        started = time.monotonic()
        first = 0.0
        async with client.messages.stream(model=MODEL, max_tokens=40, messages=[
                {"role": "user", "content": f"question {i}: what is the time where you are now?"}],
        ) as stream:
            async for _text in stream.text_stream:
                first = first or time.monotonic()
            final = await stream.get_final_message()
        return {"ttft_ms": (first - started) * 1000, "done": time.monotonic(),
                "input": final.usage.input_tokens, "output": final.usage.output_tokens}

    tasks = []
    for i in range(seconds):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1.0)
    return list(await asyncio.gather(*tasks))


def used_between(rows: list[dict[str, float]], start: float, end: float) -> dict[str, float]:
    inside = [r for r in rows if start <= r["done"] < end]
    return {"requests": len(inside), "input": sum(r["input"] for r in inside),
            "output": sum(r["output"] for r in inside)}


async def spend_burst(up: str, max_s: float) -> float:
    """Wait until the upstream's buckets are spent (the quota binds); seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        await asyncio.sleep(1.0)
        levels = (await asyncio.to_thread(stats_of, up))["levels"]
        if any(levels[k] < 0.2 * LIMITS[lim] for k, lim in
               (("requests", "rpm"), ("input", "itpm"), ("output", "otpm"))):
            break
    await asyncio.sleep(5.0)  # and a few seconds at the limit
    return time.monotonic() - started


async def part_person(args: argparse.Namespace) -> dict[str, Any]:
    with upstream(*LIMITED) as up, gateway(up) as (gw, _pid):
        client = anthropic.AsyncAnthropic(base_url=gw, api_key="x")
        load0 = load()
        idle = await person(client, args.seconds)
        guide = GuideBatch(gw)
        background = asyncio.create_task(guide.run(
            varied_jobs(3000, min_out=16, max_out=128), concurrency=50, max_s=3600))
        warmed = await spend_burst(up, args.warmup)
        start, before = time.monotonic(), stats_of(up)["levels"]
        loaded = await person(client, args.seconds)
        end, after = time.monotonic(), stats_of(up)["levels"]
        guide.stop()
        bg = await background
        await client.close()
        upstream_stats = stats_of(up)
    mine = used_between(loaded, start, end)
    theirs = used_between(guide.done_rows, start, end)
    both = {k: mine[k] + theirs[k] for k in mine}
    drained = {k: before[k] - after[k] for k in before}
    bound = binding(share(both, end - start, drained=drained))
    bg_share = share(theirs, end - start, drained=drained, minus=mine)
    ttft = {name: [r["ttft_ms"] for r in rows] for name, rows in (("idle", idle),
                                                                   ("loaded", loaded))}
    st = {k: {"p50": percentile(v, 50), "p99": percentile(v, 99), "max": max(v)}
          for k, v in ttft.items()}
    added = st["loaded"]["p99"] - st["idle"]["p99"]
    print_table(
        "A person's streamed TTFT (ms) through the gateway, one request a second; goal: loaded "
        "p99 <= idle p99 + 150 ms, background >= 95% of what the person leaves",
        ["phase", "requests", "p50", "p99", "max"],
        [[k, len(ttft[k]), f"{v['p50']:.0f}", f"{v['p99']:.0f}", f"{v['max']:.0f}"]
         for k, v in st.items()])
    print(f"p99 added by the background: {added:.0f} ms; binding limit over the loaded "
          f"phase: {bound}; background got {bg_share[bound]:.1%} of what the person left "
          f"(rpm/itpm/otpm {bg_share['requests']:.0%}/{bg_share['input']:.0%}/"
          f"{bg_share['output']:.0%}); background 429s seen: {bg['rate_limit_errors']} "
          f"RateLimitError, {bg['client_429']} answers; load {load0}-{load()}")
    return {"ttft_ms": st, "p99_added_ms": added, "background_share": bg_share,
            "binding": bound, "person_used": mine, "background_used": theirs,
            "window_s": end - start, "background": bg, "warmup_s": warmed,
            "levels": {"before": before, "after": after},
            "upstream": upstream_stats, "idle": idle, "loaded": loaded}


# -- 3. the cost of the hop, and fidelity -----------------------------------------------------
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "x"}
Event = tuple[str, str]
#: Requests of part 3 that got no stream, by side and error (counted, not fatal).
ERRORS = Counter[str]()


async def sse(client: httpx.AsyncClient, url: str, body: dict[str, Any], key: str = "x",
              ) -> tuple[float, list[Event]]:
    """A streamed request with no SDK: ms to the first content delta, and the events."""
    started = time.monotonic()
    first = 0.0
    events: list[Event] = []
    async with client.stream("POST", url + "/v1/messages", json=body,
                             headers={**HEADERS, "x-api-key": key}) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
        name, data = "", []
        async for line in r.aiter_lines():
            if line:
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                continue
            if name == "content_block_delta" and not first:
                first = time.monotonic()
            if name or data:
                events.append((name, "\n".join(data)))
            name, data = "", []
    return (first - started) * 1000, events


def body_of(job: dict[str, Any], i: int) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": job["max_tokens"], "stream": True,
                            "messages": [{"role": "user", "content": job["prompt"]}]}
    if i % 3 == 0:
        body["system"] = f"You are reader {i}."
    if i % 5 == 0:
        body["stop_sequences"] = [job["prompt"].split()[len(job["prompt"].split()) // 2]]
    return body


async def ttfts(clients: dict[str, httpx.AsyncClient], urls: dict[str, str],
                bodies: list[dict[str, Any]], width: int) -> dict[str, list[float]]:
    """TTFT straight and through the gateway, ``width`` streams at once, taking turns."""
    out: dict[str, list[float]] = {"direct": [], "gateway": []}
    for n, start in enumerate(range(0, len(bodies), width)):
        batch = bodies[start:start + width]
        order = ["direct", "gateway"] if n % 2 == 0 else ["gateway", "direct"]
        for side in order:
            got = await asyncio.gather(*(sse(clients[side], urls[side], b) for b in batch),
                                       return_exceptions=True)
            out[side].extend(g[0] for g in got if not isinstance(g, BaseException))
            for g in got:
                if isinstance(g, BaseException):
                    ERRORS[f"{side}: {type(g).__name__}: {str(g)[:80]}"] += 1
    return out


def strip_ids(data: str) -> str:
    def drop(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: drop(v) for k, v in x.items() if k != "id"}
        if isinstance(x, list):
            return [drop(v) for v in x]
        return x
    try:
        return json.dumps(drop(json.loads(data)), sort_keys=True)
    except ValueError:
        return data


async def fidelity(clients: dict[str, httpx.AsyncClient], urls: dict[str, str],
                   bodies: list[dict[str, Any]]) -> dict[str, int]:
    sem = asyncio.Semaphore(25)
    tally = Counter[str]()

    async def pair(body: dict[str, Any]) -> None:
        async with sem:
            got = await asyncio.gather(*(sse(clients[side], urls[side], body)
                                         for side in ("direct", "gateway")),
                                       return_exceptions=True)
        failed = [(side, g) for side, g in zip(("direct", "gateway"), got, strict=True)
                  if isinstance(g, BaseException)]
        for side, exc in failed:  # counted; the run goes on
            ERRORS[f"fidelity, {side}: {type(exc).__name__}: {str(exc)[:80]}"] += 1
        if failed:
            tally["errors"] += 1
            return
        (_, a), (_, b) = got  # type: ignore[misc]
        a2 = [(n, strip_ids(d)) for n, d in a]
        b2 = [(n, strip_ids(d)) for n, d in b]
        tally["streams"] += 1
        tally["events"] += len(a2)
        if a2 == b2:
            return
        ca, cb = Counter(a2), Counter(b2)
        lost, extra = sum((ca - cb).values()), sum((cb - ca).values())
        tally["streams_differing"] += 1
        tally["events_lost"] += lost
        tally["events_extra"] += extra
        tally["streams_reordered"] += int(lost == 0 and extra == 0)

    await asyncio.gather(*(pair(b) for b in bodies))
    return {k: tally[k] for k in ("streams", "events", "streams_differing", "events_lost",
                                  "events_extra", "streams_reordered", "errors")}


async def part_hop(args: argparse.Namespace) -> dict[str, Any]:
    seq = [body_of(j, i + 1) for i, j in enumerate(
        varied_jobs(args.sequential, seed=3, min_words=10, max_words=80, min_out=8, max_out=32))]
    wide = [body_of(j, i + 1) for i, j in enumerate(
        varied_jobs(50 * args.rounds, seed=4, min_words=10, max_words=80, min_out=8,
                    max_out=32))]
    faithful = [body_of(j, i) for i, j in enumerate(
        varied_jobs(args.streams, seed=5, min_words=1, max_words=300, min_out=1, max_out=300))]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    with upstream("--ttft-ms", "100", "--token-ms", "2") as up, gateway(up) as (gw, pid):
        urls = {"direct": up, "gateway": gw}
        clients = {k: httpx.AsyncClient(timeout=120, limits=limits) for k in urls}
        await ttfts(clients, urls, seq[:10], 5)  # warm both: connections, first imports
        load0, cpu0 = load(), cpu_s(pid)
        one = await ttfts(clients, urls, seq, 1)
        fifty = await ttfts(clients, urls, wide, 50)
        cpu_hop = cpu_s(pid) - cpu0
        same = await fidelity(clients, urls, faithful)
        for c in clients.values():
            await c.aclose()
    rows, out = [], {}
    for label, got, goal in (("1 stream", one, 10), ("50 at once", fifty, 30)):
        p = {side: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for side, v in got.items()}
        add = {q: p["gateway"][q] - p["direct"][q] for q in ("p50", "p99")}
        out[label] = {"ms": p, "added_ms": add, "goal_p99_ms": goal, "n": len(got["direct"])}
        rows.append([label, len(got["direct"]), f"{p['direct']['p50']:.1f}",
                     f"{p['gateway']['p50']:.1f}", f"{add['p50']:+.1f}",
                     f"{p['direct']['p99']:.1f}", f"{p['gateway']['p99']:.1f}",
                     f"{add['p99']:+.1f}", f"<= {goal}"])
    print_table("TTFT (ms) straight vs through the gateway (upstream: no limits, 100 ms to "
                "first token)", ["streams", "n", "p50 direct", "p50 gw", "added", "p99 direct",
                                 "p99 gw", "added", "goal"], rows)
    n_requests = len(seq) + len(wide)
    print(f"gateway CPU: {cpu_hop / n_requests * 1000:.1f} ms a relayed stream; load "
          f"{load0}-{load()}")
    print(f"fidelity: {same['streams']} streams, {same['events']} events: "
          f"{same['streams_differing']} differ, {same['events_lost']} lost, "
          f"{same['events_extra']} extra, {same['streams_reordered']} reordered")
    if ERRORS:
        print(f"requests that got no stream: {dict(ERRORS)}")
    return {"errors": dict(ERRORS), "ttft": out, "samples": {"1": one, "50": fifty}, "fidelity": same,
            "gateway_cpu_ms_per_stream": cpu_hop / n_requests * 1000}


PARTS = {"batch": part_batch, "person": part_person, "hop": part_hop}


async def main() -> None:
    import _peers  # its parts use this module's helpers: imported once this one is loaded

    PARTS.update(peers=_peers.part_peers, naive=_peers.part_naive)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer jobs and streams, to check")
    ap.add_argument("--only", nargs="+", choices=sorted(PARTS), help="run these parts")
    ap.add_argument("--max-seconds", type=float, default=900.0, help="cap of a batch mode")
    _peers.add_options(ap)
    args = ap.parse_args()
    _peers.prepare(args)
    q = args.quick
    args.jobs = 600 if q else 3000  # part 1 (part 2's background is cancelled)
    args.seconds, args.warmup = (20, 90) if q else (60, 90)
    args.sequential, args.rounds, args.streams = (50, 3, 200) if q else (200, 10, 1000)
    results: dict[str, Any] = {}
    kept = RESULTS / "gateway.json"
    if args.only and kept.exists():  # one part again: keep the others' last figures
        results = {k: v for k, v in json.loads(kept.read_text()).items() if k in PARTS}
    for name, part in PARTS.items():
        if args.only is None or name in args.only:
            results[name] = await part(args)
            results[name]["quick"] = q
            results[name]["load_after"] = os.getloadavg()
    save("gateway", results)


if __name__ == "__main__":
    asyncio.run(main())
