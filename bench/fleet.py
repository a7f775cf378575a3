"""Benchmark (issue 29, item 5): a fleet on one PostgreSQL, with processes killed.

On this machine, for each setting (PostgreSQL direct, and the same through PgBouncer in
transaction mode, ``?pooler=pgbouncer``): one limited upstream (``laneway local``'s app,
echo engine, ``--rpm``, its bucket empty at the start, in its own process, counting every
answer it completes per request content), 4 ``laneway serve`` and 3 ``laneway worker``
processes on one ledger, and at once:

- naive clients through the gateways: the guide's semaphore code (bench/_guide.py), each
  with its own laneway key with a budget (one budget small enough to run out), spread
  round-robin over the gateways by the bench (a refused connection goes to the next);
- a ``--jobs`` run (``laneway run --no-work --mode realtime --budget``) worked by the
  workers, its budget ``--budget-share`` of its jobs' worst cases (it binds);
- two Message Batches made through the gateways;
- after ``--warmup`` and a ``--control`` window with no kill (the same fleet and load:
  what the machine gives), every ``--kill-every`` seconds for ``--minutes`` a process
  (serve or worker, seeded choice) killed with SIGKILL and started again at once (a
  serve on its port).

Then the clients stop, the workers finish (or stop at the budget), the batches end.
Figures: the share of the upstream's limit used in the control and over the kill window
(work waiting all along; also per ``--kill-every`` seconds), the upstream's 429s, the
429s clients saw, jobs lost or duplicated in the run's output, answers paid twice (the upstream's own count per request content against the
ledger's rows; only what was in flight at a kill may be), every key's spend against its
budget plus one request's worst case, the run's spend against its budget, the batches'
results, and what clients saw near kills (errors, retries, refused connections moved to
another gateway, latency).

    .venv/bin/python bench/fleet.py [--minutes 3] [--jobs 5000] [--quick] [--only direct]

``--quick``: 2 minutes and 2,000 jobs (about 5 minutes a setting). PostgreSQL is a
private server from Debian's binaries (fsync on). Prints tables and writes
``bench/results/fleet.json``; each process's output and PostgreSQL's log are kept in
``bench/results/fleet-logs/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver, pgbouncer
sys.path.insert(0, str(Path(__file__).parent))

import httpx
import psycopg

import pgserver
from _common import RESULTS, free_port, print_table, save, wait_up
from _fleet_parts import CLIENTS, MODEL, Fleet, FleetGuide, client_rows, params_of, worst_of
from _fleet_report import client_figures, held_claims, ledger_figures, table_rows
from pgbouncer import PgBouncer

RUN = "fleet"
LANEWAY = [sys.executable, "-m", "laneway"]
BATCHES, BATCH_SIZE = 2, 200


def run_jobs(n: int) -> list[dict[str, Any]]:
    filler = " ".join(f"v{i}" for i in range(60))
    return [{"custom_id": f"job-{i}", "params": {
        "model": MODEL, "max_tokens": 16,
        "messages": [{"role": "user", "content": f"run job {i}: {filler}"}]}}
        for i in range(n)]


def laneway(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    out = subprocess.run([*LANEWAY, *args], env=env, capture_output=True, text=True,
                         check=False)
    if out.returncode != 0:
        raise RuntimeError(f"laneway {args[0]}: {out.stderr.strip()[-400:]}")
    return out.stdout.strip()


def prepare(dsn: str, tmp: Path, jobs: list[dict[str, Any]], budget_share: float
            ) -> tuple[dict[str, str], float]:
    """The run enqueued with its budget, and the clients' keys; (keys, run budget)."""
    path = tmp / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    budget = budget_share * sum(worst_of(j["params"]) for j in jobs)
    laneway("run", str(path), "--db", dsn, "--no-work", "--run", RUN, "--mode", "realtime",
            "--budget", f"{budget:.6f}", "-q")
    worst = worst_of(params_of(client_rows("alpha", 1)[0]))
    keys = {}
    for name, (fits, _n, _c) in {**CLIENTS, "batcher": (1e6, 0, 0)}.items():
        keys[name] = laneway("keys", "create", name, "--budget-usd",
                             f"{fits * worst:.6f}", "--db", dsn)
    return keys, budget


async def make_batches(urls: list[str], key: str) -> list[str]:
    guide = FleetGuide(urls, key)
    client = guide.client()
    ids = []
    try:
        for b in range(BATCHES):
            batch = await client.messages.batches.create(requests=[  # type: ignore[list-item]
                {"custom_id": f"b{b}-{i}", "params": params_of(
                    {"prompt": f"batch {b} item {i} " + "x " * 30, "max_tokens": 16})}
                for i in range(BATCH_SIZE)])
            ids.append(batch.id)
    finally:
        await client.close()
    return ids


async def end_batches(urls: list[str], key: str, ids: list[str], timeout_s: float
                      ) -> list[dict[str, Any]]:
    """Each batch once ended, through the gateways: its results' custom ids."""
    client = FleetGuide(urls, key).client()
    out = []
    try:
        deadline = time.monotonic() + timeout_s
        for batch_id in ids:
            batch = await client.messages.batches.retrieve(batch_id)
            while batch.processing_status != "ended" and time.monotonic() < deadline:
                await asyncio.sleep(2)
                batch = await client.messages.batches.retrieve(batch_id)
            got: list[str] = []
            kinds: dict[str, int] = {}
            if batch.processing_status == "ended":
                async for r in await client.messages.batches.results(batch_id):
                    got.append(r.custom_id)
                    kinds[r.result.type] = kinds.get(r.result.type, 0) + 1
            out.append({"id": batch_id, "status": batch.processing_status,
                        "results": len(got), "distinct": len(set(got)), "kinds": kinds})
    finally:
        await client.close()
    return out


async def kill_loop(fleet: Fleet, dsn: str, *, seed: int, every_s: float, minutes: float
                    ) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    names = sorted(fleet.procs)
    kills: list[dict[str, Any]] = []
    t0 = time.monotonic()
    for k in range(int(minutes * 60 // every_s) if every_s > 0 else 0):
        await asyncio.sleep(max(0.0, t0 + (k + 1) * every_s - time.monotonic()))
        name = rng.choice(names)
        at = time.monotonic()
        pid = await asyncio.to_thread(fleet.kill, name)
        held = (await asyncio.to_thread(held_claims, dsn, pid)
                if name.startswith("worker") else None)
        await asyncio.to_thread(fleet.start, name)
        kills.append({"at": at, "name": name, "pid": pid, "claims_held": held})
    await asyncio.sleep(max(0.0, t0 + minutes * 60 - time.monotonic()))
    return kills


def use_between(timeline: list[tuple[float, int]], a: float, b: float, rpm: int
                ) -> dict[str, float]:
    """Answers and the share of the limit used between ``a`` and ``b`` seconds in (the
    samples nearest inside)."""
    inside = [(at, ok) for at, ok in timeline if a <= at <= b + 0.5]
    (t_a, x), (t_b, y) = inside[0], inside[-1]
    return {"seconds": round(t_b - t_a, 1), "answered": y - x,
            "use": round((y - x) / (rpm * (t_b - t_a) / 60), 4)}


async def sample(http: httpx.AsyncClient, upstream: str, t0: float,
                 into: list[tuple[float, int]]) -> None:
    """The upstream's answers so far, every second: (seconds into the window, ok)."""
    while True:
        try:
            ok = (await http.get(upstream + "/v1/laneway/stats", timeout=30)).json()["ok"]
        except httpx.HTTPError:  # a loaded machine: the next sample
            continue
        into.append((round(time.monotonic() - t0, 2), ok))
        await asyncio.sleep(1.0)


async def scenario(fleet: Fleet, upstream: str, dsn: str, keys: dict[str, str],
                   args: argparse.Namespace) -> dict[str, Any]:
    guides = {name: FleetGuide(fleet.urls, keys[name]) for name in CLIENTS}
    runs = {name: asyncio.create_task(g.run(client_rows(name, CLIENTS[name][1]),
                                            concurrency=CLIENTS[name][2], max_s=3600))
            for name, g in guides.items()}
    batch_ids = await make_batches(fleet.urls, keys["batcher"])
    await asyncio.sleep(args.warmup)
    timeline: list[tuple[float, int]] = []
    async with httpx.AsyncClient() as http:
        t0 = time.monotonic()
        sampler = asyncio.create_task(sample(http, upstream, t0, timeline))
        await asyncio.sleep(args.control)  # the same fleet and load, no kill: the control
        kills = await kill_loop(fleet, dsn, seed=args.seed, every_s=args.kill_every,
                                minutes=args.minutes)
        sampler.cancel()
    for g in guides.values():
        g.stop()
    seen = {name: await task for name, task in runs.items()}
    batches = await end_batches(fleet.urls, keys["batcher"], batch_ids, args.drain)
    drained = await asyncio.to_thread(fleet.wait_workers, args.drain)
    await asyncio.to_thread(fleet.wait_serves)
    async with httpx.AsyncClient() as http:
        stats = (await http.get(upstream + "/v1/laneway/stats")).json()
        answered = (await http.get(upstream + "/v1/laneway/answered", timeout=60)).json()
    control = use_between(timeline, 0.0, args.control, args.rpm)
    window = use_between(timeline, args.control, args.control + args.minutes * 60, args.rpm)
    return {"control": control, "window": window, "use_of_limit": window["use"],
            "upstream": stats, "upstream_batches": answered["batches"],
            "answered": answered["answered"], "kills": kills,
            "timeline": timeline, "t0": t0 + args.control, "batches": batches,
            "workers_done": drained, "seen": seen, "guides": guides}


def setting(name: str, dsn: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    jobs = run_jobs(args.jobs)
    keys, budget = prepare(dsn, tmp, jobs, args.budget_share)
    port = free_port()
    upstream_proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "_upstream.py"), "--port", str(port),
         "--rpm", str(args.rpm), "--ttft-ms", str(args.ttft_ms), "--token-ms",
         str(args.token_ms), "--drained"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    upstream = f"http://127.0.0.1:{port}"
    logs = RESULTS / "fleet-logs" / name  # each process's output, kept for a look
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    fleet = Fleet(dsn, upstream, [free_port() for _ in range(args.serves)], args.workers,
                  run_id=RUN, lease_s=args.lease, logs=logs)
    try:
        wait_up(upstream + "/v1/laneway/stats", upstream_proc, "the upstream")
        fleet.start_all()
        out = asyncio.run(scenario(fleet, upstream, dsn, keys, args))
    finally:
        fleet.stop_all()
        upstream_proc.terminate()
        upstream_proc.wait(timeout=10)
    killed = {"serve": [k["pid"] for k in out["kills"] if k["name"].startswith("serve")]}
    out["ledger"] = ledger_figures(dsn, RUN, jobs, budget, out, killed)
    out["clients"] = client_figures(out.pop("guides"), out["seen"], out["kills"])
    out.pop("answered")
    out["setting"] = name
    out["ledger_retries"] = fleet.ledger_retries()
    out["load_after"] = os.getloadavg()
    return out


def new_database(server: str) -> str:
    db = f"fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    return db


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="Kill window.")
    ap.add_argument("--kill-every", type=float, default=15.0, help="0: no kills.")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--quick", action="store_true", help="--minutes 2 --jobs 2000")
    ap.add_argument("--rpm", type=int, default=1200)
    ap.add_argument("--ttft-ms", type=float, default=150.0)
    ap.add_argument("--token-ms", type=float, default=2.0)
    ap.add_argument("--serves", type=int, default=4)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--budget-share", type=float, default=0.85)
    ap.add_argument("--lease", type=float, default=300.0,
                    help="Workers' --lease (a same-host kill is taken up at once anyway).")
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--control", type=float, default=30.0,
                    help="Seconds measured before the first kill (the control).")
    ap.add_argument("--drain", type=float, default=300.0)
    ap.add_argument("--seed", type=int, default=29)
    ap.add_argument("--only", choices=["direct", "pgbouncer"])
    args = ap.parse_args()
    if args.quick:
        args.minutes, args.jobs = 2.0, 2000
    server = pgserver.TempPostgres.start(fast=False)
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in ("direct", "pgbouncer"):
                if args.only and args.only != name:
                    continue
                db = new_database(server.dsn)
                base = server.dsn.rsplit("/", 1)[0]
                if name == "direct":
                    results.append(setting(name, f"{base}/{db}", args, Path(tmp)))
                    continue
                bouncer = PgBouncer.start(server.dsn, pool_size=10)
                try:
                    results.append(setting(name, bouncer.dsn(db), args, Path(tmp)))
                finally:
                    bouncer.stop()
    finally:
        with contextlib.suppress(OSError):  # its log: deadlocks are told there in full
            shutil.copy(server.root / "log", RESULTS / "fleet-logs" / "postgres.log")
        server.stop()
    for title, header, rows in table_rows(results, args):
        print_table(title, header, rows)
    save("fleet", {"args": vars(args), "settings": results})


if __name__ == "__main__":
    main()
