"""Benchmark (issue 29, items 1 and 2): how soon a killed worker's claims are taken up,
and a run's ``--budget`` across several workers, on one PostgreSQL.

1. Take-up, side by side in one run: a ``laneway worker --lease L`` process (the local
   API at ``--ttft-ms`` per request, in this process) is killed with SIGKILL while it
   holds claims; a new worker starts at once. Two ways its holder can be judged:
   ``gone`` (the holder ran on this host and its pid is dead: taken up at once) and
   ``lease`` (the same holder made to look like another host's: only its lease, on the
   database's clock, frees its jobs; what every dead holder waited for before). Figures:
   seconds from the kill to the first result of a job the dead worker held, jobs it
   held, answers the API gave twice (in flight when it died), lost, duplicated.
2. Budget: ``--workers`` workers on one run with ``--budget`` worth ``--fits`` worst
   cases: what was spent against the budget, requests sent.
3. What the reservation costs: ``laneway run`` (library, SQLite, concurrency 50, no API
   latency) of ``--cost-jobs`` jobs without and with a ``--budget`` that never binds
   (one more ledger statement a request), alternating, twice each: jobs/s.

    .venv/bin/python bench/fleet_reattach.py [--lease 20] [--jobs 400] [--workers 3]

Prints a table and writes ``bench/results/fleet_reattach.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server
sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import func, select, update

import pgserver
from _common import print_table, save
from laneway.cost import tokens
from laneway.cost.prices import worst_cost
from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import Store, open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

LANEWAY = str(Path(sys.executable).with_name("laneway"))
MODEL = "claude-haiku-4-5"


def _jobs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"custom_id": f"job-{i}", "params": {
        "model": MODEL, "max_tokens": 16,
        "messages": [{"role": "user", "content": f"item {i} " + "word " * 60}]}}) + "\n"
        for i in range(n)))
    return path


def _held(store: Store, run_id: str) -> dict[int, str]:
    with store.engine.connect() as conn:
        return {int(s): str(w) for s, w in conn.execute(select(S.jobs.c.seq, S.jobs.c.claimed_by)
                .where(S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.CLAIMED))}


def _kill_holding(dsn: str, upstream: str, run_id: str, lease_s: float) -> tuple[dict[int, str], float]:
    """A worker process killed with SIGKILL once it holds claims; (its claims, kill time)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    proc = subprocess.Popen([LANEWAY, "worker", "--db", dsn, "--run", run_id, "--lease",
                             str(lease_s), "--concurrency", "8", "-q"],
                            env={**env, "ANTHROPIC_BASE_URL": upstream},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    store = open_store(dsn)
    try:
        deadline = time.monotonic() + 120
        while len(_held(store, run_id)) < 8:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker never held claims")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        proc.wait()
        return _held(store, run_id), killed_at
    finally:
        store.close()


async def take_up(dsn: str, local: RunningLocal, tmp: Path, *, how: str, jobs: int,
                  lease_s: float) -> dict[str, Any]:
    run_id = f"take-{how}"
    await run(_jobs(tmp / f"{run_id}.jsonl", jobs), config=RunConfig(
        db=dsn, no_work=True, run_name=run_id))
    before = local.api.stats["requests"]
    held, killed_at = await asyncio.to_thread(_kill_holding, dsn, local.base_url, run_id,
                                              lease_s)
    store = open_store(dsn)
    if how == "lease":  # the holder as another host's: only its lease frees its jobs
        with store.engine.begin() as conn:
            conn.execute(update(S.holders).where(S.holders.c.id.in_(set(held.values())))
                         .values(host="elsewhere"))
    first: list[float] = []

    def on_result(_run: str, _tally: Any) -> None:
        if not first:
            with store.engine.connect() as conn:
                done = conn.scalar(select(func.count()).where(
                    S.jobs.c.run_id == run_id, S.jobs.c.seq.in_(list(held)),
                    S.jobs.c.status == JobStatus.SUCCEEDED))
            if done:
                first.append(time.monotonic() - killed_at)

    await work(WorkerConfig(db=dsn, run_id=run_id, worker_id=f"next-{how}", concurrency=8,
                            lease_s=lease_s), provider=Provider.at(local.base_url),
               on_result=on_result)
    ids = [cid for cid, _ in store.iter_results(run_id)]
    counts = store.counts(run_id)
    store.close()
    sent = local.api.stats["requests"] - before
    return {"how": how, "lease_s": lease_s, "held": len(held),
            "take_up_s": round(first[0], 2) if first else None,
            "answered_twice": sent - jobs, "lost": jobs - len(set(ids)),
            "duplicated": len(ids) - len(set(ids)),
            "succeeded": counts[JobStatus.SUCCEEDED]}


async def budget(dsn: str, local: RunningLocal, tmp: Path, *, workers: int, jobs: int,
                 fits: int) -> dict[str, Any]:
    path = _jobs(tmp / "budget.jsonl", jobs)
    params = [json.loads(line)["params"] for line in path.read_text().splitlines()]
    worst = max(worst_cost(MODEL, tokens.input_tokens(p), 16, local=False) for p in params)
    limit = fits * worst
    await run(path, config=RunConfig(db=dsn, no_work=True, run_name="capped",
                                     budget_usd=limit))
    before = local.api.stats["requests"]
    await asyncio.gather(*(work(WorkerConfig(db=dsn, run_id="capped", worker_id=f"b{i}",
                                             concurrency=4, claim_size=8),
                                provider=Provider.at(local.base_url))
                           for i in range(workers)))
    store = open_store(dsn)
    counts = store.counts("capped")
    store.close()
    return {"workers": workers, "budget_usd": limit, "spent_usd": counts.cost_usd,
            "spent_of_budget": round(counts.cost_usd / limit, 4),
            "requests": local.api.stats["requests"] - before, "jobs": jobs,
            "worst_usd": worst}


async def reservation_cost(local: RunningLocal, tmp: Path, *, jobs: int) -> dict[str, Any]:
    path = _jobs(tmp / "cost.jsonl", jobs)
    rates: dict[str, list[float]] = {"none": [], "budget": []}
    for i, budget_usd in enumerate((None, 1e6, 1e6, None)):
        started = time.monotonic()
        summary = await run(path, config=RunConfig(db=str(tmp / f"cost-{i}.db"),
                                                   concurrency=50, budget_usd=budget_usd),
                            provider=Provider.at(local.base_url))
        assert summary.succeeded == jobs
        rates["none" if budget_usd is None else "budget"].append(
            jobs / (time.monotonic() - started))
    return {k: round(sum(v) / len(v), 1) for k, v in rates.items()}


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lease", type=float, default=20.0)
    ap.add_argument("--jobs", type=int, default=400)
    ap.add_argument("--ttft-ms", type=float, default=100.0)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--fits", type=int, default=20)
    ap.add_argument("--cost-jobs", type=int, default=3000)
    args = ap.parse_args()
    server = pgserver.find_postgres()
    pgserver.wait_ready(server)
    local = start_local(LocalConfig(ttft_ms=args.ttft_ms))
    rounds: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for how in ("gone", "lease"):
                name, dsn = pgserver.new_schema(server)
                try:
                    rounds.append(await take_up(dsn, local, Path(tmp), how=how,
                                                jobs=args.jobs, lease_s=args.lease))
                finally:
                    pgserver.drop_schema(server, name)
            fast = start_local(LocalConfig())  # no latency: the ledger's share shows
            try:
                cost = await reservation_cost(fast, Path(tmp), jobs=args.cost_jobs)
            finally:
                fast.stop()
            name, dsn = pgserver.new_schema(server)
            try:
                spent = await budget(dsn, local, Path(tmp), workers=args.workers,
                                     jobs=args.jobs, fits=args.fits)
            finally:
                pgserver.drop_schema(server, name)
    finally:
        local.stop()
    print_table("a killed worker's claims (kill -9 while holding them)",
                ["holder judged by", "lease s", "held", "taken up after s", "answered twice",
                 "lost", "duplicated"],
                [[r["how"], r["lease_s"], r["held"], r["take_up_s"], r["answered_twice"],
                  r["lost"], r["duplicated"]] for r in rounds])
    print_table("one run's --budget across workers", ["workers", "budget $", "spent $",
                                                      "spent/budget", "requests", "jobs"],
                [[spent["workers"], f"{spent['budget_usd']:.5f}", f"{spent['spent_usd']:.5f}",
                  spent["spent_of_budget"], spent["requests"], spent["jobs"]]])
    print_table("laneway run on SQLite, jobs/s (mean of 2)", ["no --budget", "--budget"],
                [[cost["none"], cost["budget"]]])
    save("fleet_reattach", {"take_up": rounds, "budget": spent, "reservation_cost": cost,
                            "args": vars(args)})


if __name__ == "__main__":
    asyncio.run(main())
