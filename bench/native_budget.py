"""Benchmark (issue 29): a native run's ``--budget`` across processes, before and after
its batches reserved their worst case in the ledger, side by side in one run.

1. Budget: a native run of ``--jobs`` jobs whose budget holds ``--fits`` worst cases (at
   the batch price) is sent by ``--processes`` processes at once, each a native runner
   with its own ledger connections, on SQLite (one file) and on PostgreSQL; the code of
   ``--before`` (a git ref, exported with ``git archive``) and of this checkout, in
   turn. Figures: what was spent against the budget, jobs answered, batches, seconds
   (the slowest runner's, from its start: a process's imports under load are not in).
   The echo engine says its prompt back cut at ``max_tokens``, so an answer costs near
   its worst case and a budget's worth sent twice is over it.
2. What the reservation costs: one process sends ``--cost-jobs`` jobs as batches without
   a budget and with one that never binds (a reservation a batch, a give-back a group
   of results, and each batch's params read back to know its jobs' worst cases),
   alternating, ``--reps`` times, before and after: jobs/s (median). At this machine's
   load the end-to-end figure is noise (a batch's time at the local API, and polls), so:
3. The ledger's part alone, in this process (this checkout, SQLite): a batch of
   ``--cost-jobs`` jobs recorded before ``create`` and its results filed in groups of
   500 (``file_results``), then ended, without a budget and with one (the reservation,
   each group's give-back, and the batch's params read back for its jobs' worst
   cases), alternating: ms per 1,000 jobs (median of ``--reps``).

    .venv/bin/python bench/native_budget.py [--before 207e4bf] [--processes 3]

Prints tables (with the load average) and writes ``bench/results/native_budget.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server
sys.path.insert(0, str(Path(__file__).parent))

from sqlalchemy import func, select

import pgserver
from _common import checkout_env, local_api_process, print_table, save
from laneway.cost import tokens
from laneway.cost.prices import worst_cost
from laneway.jobs.formats import Job
from laneway.store import Finished, open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

ROOT = Path(__file__).parents[1]
PROC = str(Path(__file__).with_name("_native_budget_proc.py"))
MODEL = "claude-haiku-4-5"


def _jobs(path: Path, n: int) -> tuple[Path, float]:
    """``n`` jobs of 60-word prompts; and the largest worst case of one, batch price."""
    prompts = [" ".join(f"w{i}x{k}" for k in range(60)) for i in range(n)]
    path.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": p}) + "\n"
                            for i, p in enumerate(prompts)))
    worst = max(worst_cost(MODEL, tokens.input_tokens(
        {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": p}]}),
        16, local=False, batch=True) for p in prompts)
    return path, worst


def _proc(src: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, PROC, *args], env=checkout_env(src),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _out(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=600)
    if proc.returncode:
        raise RuntimeError(f"a bench process failed: {err[-2000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _spent(dsn: str) -> tuple[float, int]:
    store = open_store(dsn)
    try:
        with store.engine.connect() as conn:
            cost = conn.scalar(select(func.coalesce(func.sum(S.jobs.c.cost_usd), 0.0)))
            done = conn.scalar(select(func.count()).select_from(S.jobs).where(
                S.jobs.c.status == JobStatus.SUCCEEDED))
        return float(cost or 0.0), int(done or 0)
    finally:
        store.close()


def send(src: Path, dsn: str, inp: Path, url: str, *, budget: float | None,
         processes: int, max_requests: int) -> dict[str, Any]:
    """Enqueue ``inp`` as a native run, send it from ``processes`` processes at once."""
    b = "-" if budget is None else repr(budget)
    run_id = str(_out(_proc(src, "enqueue", dsn, str(inp), b, "bench"))["run_id"])
    procs = [_proc(src, "send", dsn, run_id, b, f"w{i}", url, str(max_requests))
             for i in range(processes)]
    outs = [_out(p) for p in procs]
    spent, done = _spent(dsn)
    # The runners' own time (from run_native's start): a process's start under load
    # (imports) would drown it.
    return {"spent_usd": spent, "jobs": done, "s": round(max(float(o["s"]) for o in outs), 3),
            "batches": sum(int(o["batches"]) for o in outs),
            "stops": sorted(str(o["stop"]) for o in outs)}


def _ledger_ms(tmp: Path, jobs: int, *, budget: bool) -> float:
    """ms per 1,000 jobs of the ledger's part of one batch's life (see the docstring)."""
    store = open_store(tmp / f"ledger-{time.monotonic_ns()}.db")
    try:
        store.create_run(run_id="r", fingerprint="f", options={}, mode="native",
                         provider="anthropic", input_path=None, input_sha256=None,
                         budget_usd=1000.0 if budget else None)
        params = {"model": MODEL, "max_tokens": 16,
                  "messages": [{"role": "user", "content": "w " * 60}]}
        store.add_jobs("r", [Job(f"j{i}", params, i + 1) for i in range(jobs)],
                       first_seq=0, last_line=jobs)
        seqs = [c.seq for c in store.claim("r", worker="w", limit=jobs, lease_s=60)]
        done = JobStatus.SUCCEEDED
        items = [Finished(run_id="r", seq=q, status=done, result={"type": "succeeded"},
                          attempts=1, cost_usd=1e-5, mode="native") for q in seqs]
        t0 = time.perf_counter()
        assert store.begin_batch(run_id="r", batch_id="b", seqs=seqs, size_bytes=1,
                                 worker="w", reserve_usd=0.5 if budget else 0.0,
                                 budget_usd=1000.0 if budget else None)
        worst: dict[int, float] = {}
        if budget:
            worst = {q: worst_cost(MODEL, tokens.input_tokens(p), 16, local=False,
                                   batch=True)
                     for q, p in store.submitted_params("r", "b").items()}
        for start in range(0, len(items), 500):
            store.file_results("r", "b", items[start:start + 500], [], worst)
        store.end_batch("b", None)
        return (time.perf_counter() - t0) * 1000 / jobs * 1000
    finally:
        store.close()


def ledgers(server: str, tmp: Path) -> dict[str, Any]:
    """A fresh ledger's DSN for each database, made on demand (``next``)."""
    count = [0]
    made: list[str] = []

    def sqlite() -> str:
        count[0] += 1
        return f"sqlite:///{tmp / f'l{count[0]}.db'}"

    def postgresql() -> str:
        name, dsn = pgserver.new_schema(server)
        made.append(name)
        return dsn

    return {"sqlite": sqlite, "postgresql": postgresql, "made": made}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="207e4bf")
    ap.add_argument("--processes", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=120)
    ap.add_argument("--fits", type=int, default=20)
    ap.add_argument("--cost-jobs", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    server = pgserver.find_postgres()
    pgserver.wait_ready(server)
    budget_rows: list[dict[str, Any]] = []
    cost_rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        before = tmp / "before"
        before.mkdir()
        subprocess.run(f"git -C {ROOT} archive {args.before} src | tar -x -C {before}",
                       shell=True, check=True)
        checkouts = {"before": before / "src", "after": ROOT / "src"}
        fresh = ledgers(server, tmp)
        inp, worst = _jobs(tmp / "in.jsonl", args.jobs)
        budget = args.fits * worst
        big, _ = _jobs(tmp / "big.jsonl", args.cost_jobs)
        try:
            with local_api_process("--batch-min-s", "0.3", "--batch-concurrency", "32") as url:
                for db in ("sqlite", "postgresql"):
                    for label, src in checkouts.items():
                        r = send(src, fresh[db](), inp, url, budget=budget,
                                 processes=args.processes, max_requests=args.fits)
                        budget_rows.append({"db": db, "code": label, "budget_usd": budget,
                                            **r, "over": r["spent_usd"] > budget})
            with local_api_process("--batch-concurrency", "64") as url:
                for rep in range(args.reps):
                    for label, src in checkouts.items():
                        for bud in (None, 1000.0):
                            r = send(src, fresh["sqlite"](), big, url, budget=bud,
                                     processes=1, max_requests=500)
                            cost_rows.append({"rep": rep, "code": label,
                                              "budget": bud is not None, **r,
                                              "jobs_s": round(r["jobs"] / r["s"], 1)})
            ledger_ms = {False: [], True: []}
            for _ in range(args.reps):
                for bud in (False, True):
                    ledger_ms[bud].append(_ledger_ms(tmp, args.cost_jobs, budget=bud))
        finally:
            for name in fresh["made"]:
                pgserver.drop_schema(server, name)
    load = os.getloadavg()
    print_table(f"one native run's --budget (${budget:.5f}, {args.fits} worst cases) sent by "
                f"{args.processes} processes at once; load {load[0]:.1f}",
                ["db", "code", "spent $", "spent/budget", "over", "jobs", "batches", "s",
                 "stops"],
                [[r["db"], r["code"], f"{r['spent_usd']:.5f}",
                  f"{r['spent_usd'] / budget:.2f}", r["over"], r["jobs"], r["batches"],
                  r["s"], ",".join(r["stops"])] for r in budget_rows])
    means = {(c, b): statistics.median(r["jobs_s"] for r in cost_rows
                                       if (r["code"], r["budget"]) == (c, b))
             for c in checkouts for b in (False, True)}
    print_table(f"{args.cost_jobs} jobs as batches of 500, one process, SQLite: jobs/s "
                f"(median of {args.reps}, alternating; load {load[0]:.1f})",
                ["code", "no --budget", "--budget (never binds)", "ratio"],
                [[c, round(means[(c, False)], 1), round(means[(c, True)], 1),
                  f"{means[(c, True)] / means[(c, False)]:.2f}"] for c in checkouts])
    med = {b: statistics.median(v) for b, v in ledger_ms.items()}
    print_table(f"the ledger's part of a {args.cost_jobs}-job batch's life, SQLite, this "
                f"checkout: ms per 1,000 jobs (median of {args.reps}; load {load[0]:.1f})",
                ["no --budget", "--budget", "added ms per 1,000 jobs"],
                [[f"{med[False]:.1f}", f"{med[True]:.1f}", f"{med[True] - med[False]:.1f}"]])
    save("native_budget", {"budget": budget_rows, "reservation_cost": cost_rows,
                           "ledger_ms": {str(k): v for k, v in ledger_ms.items()},
                           "args": vars(args)})


if __name__ == "__main__":
    main()
