"""bench/gateway.py's peers parts (issue 28): laneway's gateway beside LiteLLM's proxy.

Columns: ``direct`` (straight to the upstream), ``laneway`` (this tree's ``laneway serve``),
``laneway before`` (``--before TREE/src``, with ``PYTHONPATH``) and ``LiteLLM`` (its proxy,
1 worker, from its own environment: ``--litellm PATH`` to that environment's python or
its ``litellm`` command; the column is skipped with a notice when absent). Each gateway
is its own process in front of its upstream, ``laneway local --engine echo``.

- ``peers``: the upstream ``--ttft-ms 100 --token-ms 2``, streams of ``max_tokens`` 64
  (raw SSE over httpx, as part 3). All gateways run at once; each repeat sends N streams
  one at a time, then R rounds of 50 at once, the columns taking turns per stream (per
  round) in a rotating order; the gateway's CPU per request (its process tree's user +
  system time from /proc, children included) at 1 and at 50; TTFT p50/p99 added (the
  gateway's less direct's in the same repeat); the median of the repeats. Idle CPU: one
  60 s window with every gateway up, warmed and idle.
- ``naive``: the guide's naive code (bench/_guide.py, Semaphore(50), ``sleep(60)`` on a
  RateLimitError) from a drained account (upstream ``--rpm 600 --drained``, new for each
  column): share of the limit (what it answered over the refill since the first request
  plus what the bucket held then), in steady state (20%-90% of the run), the upstream's
  429s, failed jobs. LiteLLM twice: untuned (its defaults) and tuned (the deployment's
  ``rpm``, ``usage-based-routing-v2`` and 50 retries on a rate-limit error).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from _common import checkout_env, free_port, percentile, print_table, varied_jobs
from _guide import GuideBatch
from gateway import MODEL, load, process, sse, stats_of

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
HOP_UPSTREAM = ("--ttft-ms", "100", "--token-ms", "2")
LITELLM_ENV = {"LITELLM_LOCAL_MODEL_COST_MAP": "True",
               "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY": "true",
               "LITELLM_TELEMETRY": "False"}
TUNED = {"routing_strategy": "usage-based-routing-v2",
         "retry_policy": {"RateLimitErrorRetries": 50}}


# -- the processes --------------------------------------------------------------------------
def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants, each with its waited-for
    children's (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            f = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(d.name)] = int(f[1])
        times[int(d.name)] = sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        tree.add(p)
        todo.extend(c for c, pp in parents.items() if pp == p and c not in tree)
    return sum(times.get(p, 0.0) for p in tree)


@contextlib.contextmanager
def upstream(*args: str) -> Iterator[tuple[str, int]]:
    """bench/_upstream.py (the local API and its counters) of this tree; its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, str(HERE / "_upstream.py"), "--port", str(port), *args],
                 url + "/v1/laneway/stats", "the upstream", env={"PYTHONPATH": str(SRC)}) as p:
        yield url, p.pid


@contextlib.contextmanager
def laneway_serve(src: Path, up: str, *, key: bool = False) -> Iterator[tuple[str, int, str]]:
    """``laneway serve`` of ``src`` on a new SQLite ledger; its URL, pid and the key to send
    (``key``: a budgeted key with a rate, as bench/relay.py: the reservation in the path)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = checkout_env(src, ANTHROPIC_BASE_URL=up, ANTHROPIC_API_KEY="x")
    with tempfile.TemporaryDirectory() as tmp:
        db, secret = str(Path(tmp) / "ledger.db"), "x"
        if key:
            secret = subprocess.run(
                [sys.executable, "-m", "laneway", "keys", "create", "bench", "--budget-usd",
                 "1000", "--rpm", "100000", "--db", db], env=env, check=True,
                capture_output=True, text=True).stdout.strip().splitlines()[-1].strip()
        with process([sys.executable, "-m", "laneway", "serve", "--port", str(port),
                      "--provider", "anthropic", "--db", db], url + "/healthz",
                     f"laneway serve {src.parent.name}", env=env) as proc:
            yield url, proc.pid, secret


def litellm_command(path: Path) -> list[str]:
    """The proxy's command from ``path``: its environment's python, or its ``litellm``."""
    if path.name.startswith("python"):
        return [str(path), "-m", "litellm.proxy.proxy_cli"]
    return [str(path)]


@contextlib.contextmanager
def litellm_proxy(path: Path, up: str, *, tuned: bool = False, rpm: int = 600,
                  log: str = "ERROR") -> Iterator[tuple[str, int, str]]:
    """LiteLLM's proxy, 1 worker, ``claude-haiku-4-5`` → ``anthropic/claude-haiku-4-5`` at
    ``up``; ``tuned``: the deployment's ``rpm`` enforced, retries on rate-limit errors."""
    params: dict[str, Any] = {"model": f"anthropic/{MODEL}", "api_base": up, "api_key": "x"}
    config: dict[str, Any] = {"model_list": [{"model_name": MODEL, "litellm_params": params}],
                              "litellm_settings": {"telemetry": False}}
    if tuned:
        params["rpm"] = rpm
        config["router_settings"] = TUNED
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(json.dumps(config))  # JSON is YAML
        with process([*litellm_command(path), "--config", str(cfg), "--host", "127.0.0.1",
                      "--port", str(port), "--num_workers", "1"],
                     url + "/health/liveliness", "litellm", env={**LITELLM_ENV, "LITELLM_LOG": log},
                     timeout_s=300) as proc:  # its imports take 10-60 s on a loaded machine
            yield url, proc.pid, "x"  # no master key: any key


def gateways(args: argparse.Namespace, up: str, stack: contextlib.ExitStack,
             ) -> dict[str, tuple[str, int, str]]:
    """Every gateway column in front of ``up``, started in ``stack``: URL, pid, key."""
    out = {"laneway": stack.enter_context(laneway_serve(args.src, up, key=args.key))}
    if args.before:
        out["laneway before"] = stack.enter_context(laneway_serve(args.before, up,
                                                                  key=args.key))
    if args.litellm:
        out["LiteLLM"] = stack.enter_context(litellm_proxy(args.litellm, up,
                                                           log=args.litellm_log))
    return out


def check_litellm(args: argparse.Namespace) -> None:
    """``args.litellm`` (default: bench/.venv-litellm's python, if there) kept only if it
    exists; else a one-line notice."""
    if args.litellm is None and (HERE / ".venv-litellm/bin/python").exists():
        args.litellm = HERE / ".venv-litellm/bin/python"
    if args.litellm is not None and not args.litellm.exists():
        print(f"LiteLLM column skipped: {args.litellm} does not exist (python3 -m venv "
              "bench/.venv-litellm && bench/.venv-litellm/bin/pip install 'litellm[proxy]')")
        args.litellm = None
    elif args.litellm is None:
        print("LiteLLM column skipped: no --litellm PATH (its own environment's python or "
              "litellm command) and no bench/.venv-litellm")


# -- peers: CPU per request and TTFT added ----------------------------------------------
def bodies(n: int, seed: int) -> list[dict[str, Any]]:
    """Streams of ``max_tokens`` 64 whose prompt is long enough to echo all 64."""
    return [{"model": MODEL, "max_tokens": 64, "stream": True,
             "messages": [{"role": "user", "content": j["prompt"]}]}
            for j in varied_jobs(n, seed=seed, min_words=80, max_words=160)]


class Hop:
    """The columns' clients and the processes whose CPU is read."""

    def __init__(self, urls: dict[str, str], pids: dict[str, int],
                 keys: dict[str, str]) -> None:
        self.urls, self.pids, self.keys = urls, pids, keys
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        self.clients = {k: httpx.AsyncClient(timeout=120, limits=limits) for k in urls}
        self.errors: dict[str, int] = {}

    def cpu(self) -> dict[str, float]:
        return {k: tree_cpu_s(p) for k, p in self.pids.items()}

    async def streams(self, side: str, batch: list[dict[str, Any]]) -> list[float]:
        got = await asyncio.gather(*(sse(self.clients[side], self.urls[side], b,
                                         self.keys.get(side, "x"))
                                     for b in batch), return_exceptions=True)
        for g in got:
            if isinstance(g, BaseException):
                key = f"{side}: {type(g).__name__}: {str(g)[:80]}"
                self.errors[key] = self.errors.get(key, 0) + 1
        return [g[0] for g in got if not isinstance(g, BaseException)]

    async def phase(self, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """Each batch sent by every column in turn (order rotated); TTFTs and CPU."""
        sides = list(self.urls)
        ttft: dict[str, list[float]] = {s: [] for s in sides}
        cpu0 = self.cpu()
        for n, batch in enumerate(batches):
            for side in sides[n % len(sides):] + sides[:n % len(sides)]:
                ttft[side].extend(await self.streams(side, batch))
        cpu1 = self.cpu()
        per = sum(len(b) for b in batches)  # requests per column; the upstream gets them all
        served = {k: per * (len(sides) if k == "upstream" else 1) for k in cpu1}
        return {"ttft": ttft, "requests": per,
                "cpu_ms": {k: (cpu1[k] - cpu0[k]) / served[k] * 1000 for k in cpu1}}

    async def close(self) -> None:
        for c in self.clients.values():
            await c.aclose()


def summary(phase: dict[str, Any]) -> dict[str, Any]:
    t = phase["ttft"]
    p = {s: {"p50": percentile(v, 50), "p99": percentile(v, 99)} for s, v in t.items()}
    added = {s: {q: p[s][q] - p["direct"][q] for q in ("p50", "p99")} for s in p
             if s != "direct"}
    return {"ms": p, "added_ms": added, "cpu_ms": phase["cpu_ms"], "n": phase["requests"]}


async def part_peers(args: argparse.Namespace) -> dict[str, Any]:
    n1, rounds = (30, 2) if args.quick else (100, 5)
    with upstream(*HOP_UPSTREAM) as (up, up_pid), contextlib.ExitStack() as stack:
        gws = gateways(args, up, stack)
        hop = Hop({"direct": up, **{k: g[0] for k, g in gws.items()}},
                  {"upstream": up_pid, **{k: g[1] for k, g in gws.items()}},
                  {k: g[2] for k, g in gws.items()})
        await hop.phase([bodies(10, 1)[i:i + 5] for i in (0, 5)])  # warm: imports, pools
        load0, cpu0, t0 = load(), hop.cpu(), time.monotonic()
        await asyncio.sleep(args.idle_s)
        cpu1, idle_s = hop.cpu(), time.monotonic() - t0
        idle = {k: (cpu1[k] - cpu0[k]) / idle_s * 100 for k in cpu1}  # % of a core
        repeats = []
        for r in range(args.repeats):
            one = await hop.phase([[b] for b in bodies(n1, 100 + r)])
            wide = bodies(50 * rounds, 200 + r)
            fifty = await hop.phase([wide[i:i + 50] for i in range(0, len(wide), 50)])
            repeats.append({"1": summary(one), "50": summary(fifty), "load": load()})
            print(f"  peers repeat {r + 1}/{args.repeats} done, load {load()}", flush=True)
        await hop.close()
    out = {"columns": list(hop.urls), "key": args.key, "idle_cpu_pct": idle, "idle_s": idle_s,
           "repeats": repeats, "errors": hop.errors, "load": [load0, load()],
           "median": median_of(repeats, list(gws))}
    print_peers(out)
    return out


def median_of(repeats: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for width in ("1", "50"):
        rs = [r[width] for r in repeats]
        out[width] = {
            "cpu_ms": {k: statistics.median(r["cpu_ms"][k] for r in rs)
                       for k in ["upstream", *names]},
            "added_ms": {k: {q: statistics.median(r["added_ms"][k][q] for r in rs)
                             for q in ("p50", "p99")} for k in names},
            "direct_ms": {q: statistics.median(r["ms"]["direct"][q] for r in rs)
                          for q in ("p50", "p99")}}
    return out


def print_peers(out: dict[str, Any]) -> None:
    m, names = out["median"], [c for c in out["columns"] if c != "direct"]
    idle = out["idle_cpu_pct"]
    rows = []
    for w, label in (("1", "1 at a time"), ("50", "50 at once")):
        rows.append([f"CPU ms a request, {label}", f"(upstream {m[w]['cpu_ms']['upstream']:.2f})",
                     *(f"{m[w]['cpu_ms'][k]:.2f}" for k in names)])
        for q in ("p50", "p99"):
            rows.append([f"TTFT {q} added ms, {label}", f"({m[w]['direct_ms'][q]:.0f} ms)",
                         *(f"{m[w]['added_ms'][k][q]:+.1f}" for k in names)])
    rows.append([f"idle CPU, % of a core over {out['idle_s']:.0f} s",
                 f"(upstream {idle['upstream']:.2f})", *(f"{idle[k]:.2f}" for k in names)])
    if "LiteLLM" in names:
        for w in ("1", "50"):
            lite = m[w]["cpu_ms"]["LiteLLM"]
            rows.append([f"LiteLLM's CPU / this column's, {w}", "",
                         *(f"{lite / m[w]['cpu_ms'][k]:.1f}x" if k != "LiteLLM" else ""
                           for k in names)])
    print_table(f"Gateways beside each other: upstream echo, 100 ms to first token, 2 ms a "
                f"token, streamed, max_tokens 64; laneway {'with a budgeted key' if out['key'] else 'without keys'}; "
                f"median of {len(out['repeats'])} repeats; "
                f"load {out['load'][0]}-{out['load'][1]}", ["figure", "direct", *names], rows)
    if out["errors"]:
        print(f"streams that failed: {out['errors']}")


# -- naive: the guide's naive code from a drained account -----------------------------------
def naive_columns(args: argparse.Namespace) -> list[str]:
    cols = ["direct", "laneway", *(["laneway before"] if args.before else [])]
    return cols + (["LiteLLM untuned", "LiteLLM tuned"] if args.litellm else [])


def naive_target(args: argparse.Namespace, col: str, up: str, rpm: int,
                 stack: contextlib.ExitStack) -> str:
    if col == "direct":
        return up
    if col.startswith("LiteLLM"):
        return stack.enter_context(litellm_proxy(args.litellm, up, tuned=col == "LiteLLM tuned",
                                                 rpm=rpm, log=args.litellm_log))[0]
    return stack.enter_context(laneway_serve(args.before if "before" in col else args.src,
                                             up))[0]


def share_of(rows: list[dict[str, float]], start: float, end: float, rpm: int,
             held: float) -> float:
    answered = sum(1 for r in rows if start <= r["done"] <= end)
    return answered / max(1e-9, rpm * (end - start) / 60.0 + max(0.0, held))


async def naive_one(args: argparse.Namespace, col: str, rpm: int) -> dict[str, Any]:
    jobs = varied_jobs(args.naive_jobs, min_out=16, max_out=128)
    expected_s = 60.0 * len(jobs) / rpm
    with upstream("--rpm", str(rpm), "--drained") as (up, _), \
            contextlib.ExitStack() as stack:
        target = naive_target(args, col, up, rpm, stack)
        async with httpx.AsyncClient(timeout=10) as c:  # drained from now, however long
            (await c.post(up + "/v1/laneway/drain")).raise_for_status()  # the start took
        load0, held = load(), stats_of(up)["levels"]["requests"]
        guide = GuideBatch(target)
        started = time.monotonic()
        out = await guide.run(jobs, concurrency=50, max_s=3 * expected_s + 120, stall_s=90)
        stats = stats_of(up)
    rows = guide.done_rows
    end = max([r["done"] for r in rows], default=started + 1)
    wall = end - started
    a, b = started + 0.2 * wall, started + 0.9 * wall
    return {"column": col, "jobs": len(jobs), "wall_s": wall, "held_at_start": held,
            "share_whole": share_of(rows, started, end, rpm, held),
            "share_steady": share_of(rows, a, b, rpm, 0.0),
            "upstream_429": stats.get("rate_limited", 0), "ok": out["ok"],
            "failed": out["failed"], "unfinished": out["unfinished"],
            "rate_limit_errors": out["rate_limit_errors"], "client_429": out["client_429"],
            "errors": out["errors"], "stopped": out["stopped"], "load": [load0, load()]}


async def part_naive(args: argparse.Namespace) -> dict[str, Any]:
    rpm, cols, runs = 600, naive_columns(args), []
    for r in range(args.naive_repeats):
        for col in cols[r % len(cols):] + cols[:r % len(cols)]:
            runs.append(await naive_one(args, col, rpm))
            print(f"  naive {col}: share {runs[-1]['share_whole']:.3f}, load {load()}",
                  flush=True)
    med = {c: {k: statistics.median(x[k] for x in runs if x["column"] == c)
               for k in ("share_whole", "share_steady", "upstream_429", "failed",
                         "unfinished", "client_429", "wall_s")} for c in cols}
    print_table(
        f"The guide's naive code (Semaphore(50), sleep(60) on a RateLimitError), "
        f"{args.naive_jobs} jobs from a drained account at rpm {rpm}; median of "
        f"{args.naive_repeats}; load {runs[0]['load'][0]}-{load()}",
        ["column", "share whole", "share steady", "upstream 429s", "429s to client",
         "failed", "unfinished", "wall s"],
        [[c, f"{m['share_whole']:.3f}", f"{m['share_steady']:.3f}", f"{m['upstream_429']:.0f}",
          f"{m['client_429']:.0f}", f"{m['failed']:.0f}", f"{m['unfinished']:.0f}",
          f"{m['wall_s']:.0f}"] for c, m in med.items()])
    return {"rpm": rpm, "runs": runs, "median": med}


def add_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--litellm", type=Path, help="LiteLLM's python (of its own environment) "
                    "or its litellm command: adds the LiteLLM column to peers and naive")
    ap.add_argument("--litellm-log", default="ERROR", help="LiteLLM's LITELLM_LOG (its own "
                    "default is DEBUG; ERROR: no line a request)")
    ap.add_argument("--before", type=Path, help="another checkout's src: a 'laneway before' "
                    "column in peers and naive")
    ap.add_argument("--src", type=Path, default=SRC, help="the laneway column's src")
    ap.add_argument("--repeats", type=int, default=3, help="peers: repeats (median)")
    ap.add_argument("--key", action="store_true", help="peers: the laneway columns with a "
                    "budgeted key that has a rate (LiteLLM stays without a master key)")
    ap.add_argument("--idle-s", type=float, default=60.0, help="peers: idle window")
    ap.add_argument("--naive-jobs", type=int, help="naive: jobs (900; --quick 300)")
    ap.add_argument("--naive-repeats", type=int, help="naive: repeats (median; 3, --quick 1)")


def prepare(args: argparse.Namespace) -> None:
    """Resolve the paths; the LiteLLM column kept only if it exists."""
    args.src = args.src.resolve()
    args.before = args.before.resolve() if args.before else None
    if args.before and not (args.before / "laneway").is_dir():
        sys.exit(f"--before {args.before}: no laneway package there (give a checkout's src)")
    args.naive_jobs = args.naive_jobs or (300 if args.quick else 900)
    args.naive_repeats = args.naive_repeats or (1 if args.quick else 3)
    check_litellm(args)
