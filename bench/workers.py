"""Benchmark: several ``laneway worker`` processes on one run in a PostgreSQL ledger.

For 1, 2 and 4 worker processes, enqueues one run (``laneway run --no-work``) and lets
the workers send it to the local API (echo engine, ``--ttft-ms`` of latency per
request, in its own process), then measures throughput. One more round kills a
worker with SIGKILL mid-run and checks that nothing is lost or duplicated once the
others have taken its jobs back (its lease runs out after ``--lease`` seconds).

    .venv/bin/python bench/workers.py [--jobs 20000] [--workers 1,2,4] [--ttft-ms 50]

PostgreSQL is ``$LANEWAY_TEST_PG`` or a private server started from Debian's binaries
(with fsync on, as a real one would be). Prints a table and writes
``bench/results/workers.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

import pgserver
from laneway.local.server import free_port
from laneway.store import Store, open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

RESULTS = Path(__file__).parent / "results" / "workers.json"
LANEWAY = str(Path(sys.executable).with_name("laneway"))
RUN = "bench"


@dataclass
class Round:
    workers: int
    killed: int
    jobs: int
    enqueue_s: float
    #: From starting the worker processes to the last one exiting.
    wall_s: float
    #: From the first result to the last (process start-up left out).
    work_s: float
    jobs_per_s: float
    #: Requests the API answered: more than ``jobs`` when a killed worker's jobs were
    #: sent again (its answers in flight died with it).
    requests: int
    held_by_killed: int
    lost: int
    duplicated: int
    succeeded: int


def _serve(port: int, ttft_ms: float, served: Any) -> None:
    """The local API, counting the messages it answers (in a process of its own)."""
    import uvicorn

    from laneway.local.app import create_app
    from laneway.local.config import LocalConfig

    inner = create_app(LocalConfig(engine="echo", ttft_ms=ttft_ms))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        async def counting_send(message: Any) -> None:
            if (message["type"] == "http.response.start" and message["status"] == 200
                    and scope.get("path") == "/v1/messages"):
                with served.get_lock():
                    served.value += 1
            await send(message)

        await inner(scope, receive, counting_send)

    # "critical": a killed worker's dropped connections are expected, not news.
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="critical", access_log=False,
                lifespan="on")


def _postgres(console: Console) -> tuple[str, pgserver.TempPostgres | None]:
    dsn = os.environ.get(pgserver.ENV_DSN)
    if dsn:
        return dsn, None
    server = pgserver.TempPostgres.start(fast=False)
    console.print(f"PostgreSQL: private server at {server.dsn}")
    return server.dsn, server


def _enqueue(dsn: str, jobs: int, tmp: Path, env: dict[str, str]) -> float:
    inp = tmp / "in.jsonl"
    with inp.open("w") as f:
        for i in range(jobs):
            f.write(json.dumps({"id": f"job-{i}", "prompt": f"Summarise item {i}."}) + "\n")
    started = time.monotonic()
    subprocess.run([LANEWAY, "run", str(inp), "--db", dsn, "--no-work", "--run", RUN, "-q",
                    "--max-tokens", "32"], check=True, env=env, capture_output=True)
    return time.monotonic() - started


def _held(store: Store, worker: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(
            S.jobs.c.run_id == RUN, S.jobs.c.status == JobStatus.CLAIMED,
            S.jobs.c.claimed_by == worker)) or 0)


def _supervise(store: Store, procs: dict[str, subprocess.Popen[str]], *, kill: bool,
               jobs: int, console: Console) -> int:
    """Wait for the workers (killing the last one a third of the way in, if ``kill``);
    returns how many jobs the killed worker held."""
    held = 0
    if kill:
        victim = list(procs)[-1]
        while True:
            done = store.counts(RUN)[JobStatus.SUCCEEDED]
            held = _held(store, victim)
            if done >= jobs // 3 and held > 0:
                break
            time.sleep(0.05)
        procs[victim].send_signal(signal.SIGKILL)
        console.print(f"  killed {victim} at {done} done, holding {held} jobs")
    for wid, proc in procs.items():
        _, err = proc.communicate()
        if proc.returncode not in (0, -signal.SIGKILL):
            raise SystemExit(f"worker {wid} failed ({proc.returncode}):\n{err}")
    return held


def _round(dsn: str, *, workers: int, kill: bool, jobs: int, lease_s: float,
           concurrency: int | None, env: dict[str, str], served: Any,
           console: Console) -> Round:
    name, schema_dsn = pgserver.new_schema(dsn)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            enqueue_s = _enqueue(schema_dsn, jobs, Path(tmp), env)
            store = open_store(schema_dsn)
            try:
                with served.get_lock():
                    served.value = 0
                extra = ["--concurrency", str(concurrency)] if concurrency else []
                started = time.monotonic()
                procs = {f"w{i}": subprocess.Popen(
                    [LANEWAY, "worker", "--db", schema_dsn, "--lease", str(lease_s),
                     "--id", f"w{i}", "-q", *extra], env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                    for i in range(workers)}
                try:
                    held = _supervise(store, procs, kill=kill, jobs=jobs, console=console)
                finally:
                    for proc in procs.values():  # an interrupted bench leaves no workers
                        if proc.poll() is None:
                            proc.kill()
                            proc.wait()
                wall_s = time.monotonic() - started
                counts = store.counts(RUN)
                with store.engine.connect() as conn:
                    first, last = conn.execute(select(
                        func.min(S.jobs.c.finished_at), func.max(S.jobs.c.finished_at)
                    ).where(S.jobs.c.run_id == RUN)).one()
                ids = [cid for cid, _ in store.iter_results(RUN)]
            finally:
                store.close()
    finally:
        pgserver.drop_schema(dsn, name)
    work_s = float(last - first) if first is not None else 0.0
    return Round(
        workers=workers, killed=1 if kill else 0, jobs=jobs, enqueue_s=round(enqueue_s, 2),
        wall_s=round(wall_s, 2), work_s=round(work_s, 2),
        jobs_per_s=round(jobs / work_s, 1) if work_s else 0.0, requests=served.value,
        held_by_killed=held, lost=jobs - len(set(ids)), duplicated=len(ids) - len(set(ids)),
        succeeded=counts[JobStatus.SUCCEEDED])


def _table(rounds: list[Round], *, ttft_ms: float, concurrency: int | None) -> Table:
    title = (f"laneway worker processes on one run (echo API, {ttft_ms:g} ms per request, "
             f"concurrency {concurrency or 'adaptive'} per worker)")
    table = Table(title=title)
    for col in ("workers", "killed", "jobs", "wall s", "work s", "jobs/s", "speed-up",
                "requests", "re-sent", "lost", "duplicated"):
        table.add_column(col, justify="right")
    base = next((r.jobs_per_s for r in rounds if r.workers == 1 and not r.killed), None)
    for r in rounds:
        speedup = f"{r.jobs_per_s / base:.2f}x" if base else ""
        table.add_row(str(r.workers), str(r.killed), str(r.jobs), f"{r.wall_s:.1f}",
                      f"{r.work_s:.1f}", f"{r.jobs_per_s:.0f}", speedup, str(r.requests),
                      str(r.requests - r.jobs), str(r.lost), str(r.duplicated))
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--kill-workers", type=int, default=4,
                        help="workers in the round where one is killed (0: no such round)")
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--capped-concurrency", type=int, default=4,
                        help="requests in flight per worker in the second series, where "
                        "each worker rather than the API is the limit (0: no such series)")
    parser.add_argument("--capped-jobs", type=int, default=5000)
    parser.add_argument("--lease", type=float, default=5.0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    console = Console(stderr=True)
    load_before = os.getloadavg()
    dsn, server = _postgres(console)
    port = free_port()
    served = multiprocessing.get_context("spawn").Value("q", 0)
    api = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(port, args.ttft_ms, served), daemon=True)
    api.start()
    env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
    env.pop("ANTHROPIC_API_KEY", None)
    counts = [int(w) for w in args.workers.split(",")]
    plans: list[tuple[int | None, int, list[tuple[int, bool]]]] = [
        (None, args.jobs, [(w, False) for w in counts]
         + ([(args.kill_workers, True)] if args.kill_workers else []))]
    if args.capped_concurrency:
        plans.append((args.capped_concurrency, args.capped_jobs,
                      [(w, False) for w in counts]))
    series: list[dict[str, Any]] = []
    try:
        for concurrency, jobs, plan in plans:
            rounds: list[Round] = []
            for workers, kill in plan:
                console.print(f"{workers} worker(s){', one killed' if kill else ''}, "
                              f"concurrency {concurrency or 'adaptive'}: {jobs} jobs ...")
                r = _round(dsn, workers=workers, kill=kill, jobs=jobs, lease_s=args.lease,
                           concurrency=concurrency, env=env, served=served,
                           console=console)
                console.print(f"  {r.jobs_per_s:.0f} jobs/s, {r.wall_s:.1f} s wall, "
                              f"lost {r.lost}, duplicated {r.duplicated}")
                rounds.append(r)
            series.append({"concurrency_per_worker": concurrency or "adaptive",
                           "rounds": rounds})
    finally:
        api.terminate()
        api.join(timeout=10)
        if server is not None:
            server.stop()
    out = Console(width=130)
    for s in series:
        conc = s["concurrency_per_worker"]
        out.print(_table(s["rounds"], ttft_ms=args.ttft_ms,
                         concurrency=None if conc == "adaptive" else conc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "workers",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    # Other work on the machine skews the numbers: the load says how much.
                    "loadavg_1m_before": round(load_before[0], 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2)},
        "setup": {"engine": "echo", "ttft_ms": args.ttft_ms, "max_tokens": 32,
                  "lease_s": args.lease, "postgres": "LANEWAY_TEST_PG" if server is None
                  else "private server, fsync on", "api": "separate process, one uvicorn"},
        "series": [{"concurrency_per_worker": s["concurrency_per_worker"],
                    "rounds": [asdict(r) for r in s["rounds"]]} for s in series],
    }, indent=2) + "\n")
    console.print(f"wrote {args.output}")
    ok = all(r.lost == 0 and r.duplicated == 0 and r.succeeded == r.jobs
             for s in series for r in s["rounds"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
