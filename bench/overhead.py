"""Benchmark: throughput of laneway's runner versus the plain pattern it replaces.

Both send the same JSONL file of short prompts (max_tokens 16) to the local API's echo
engine at zero latency (or ``--ttft-ms``), run as a separate process (``laneway local
--engine echo``) so the server does not share the client's GIL:

- **laneway**: ``await laneway.runs.library.run(IN, OUT, mode="realtime", concurrency=C, db=...)``
  with a fresh SQLite ledger per trial: ingest, claim, send, group-commit every result,
  write the results file. The time is end to end (the runner's own send phase is reported
  too). ``mode="realtime"``: ``auto`` may plan native batches for a run this size.
- **plain**: one ``AsyncAnthropic(max_retries=0)``, an ``asyncio.Semaphore(C)``,
  ``await client.messages.create(...)`` per line of the file, results kept in a list,
  no durability.

For each concurrency the two alternate (``--repeats`` trials each, the order swapped on
every repetition) and the median jobs/s is reported, with the ratio laneway/plain
(goal: >= 1.0x at every concurrency), and the client's CPU ms per job (every thread of
this process; the server's CPU is not counted), which is steadier than wall time on a
shared machine. Timings on a shared machine are noisy: compare ratios, not absolute rates.

    .venv/bin/python bench/overhead.py [--jobs 20000] [--concurrency 5,50,200] [--repeats 2]
    .venv/bin/python bench/overhead.py --profile laneway --jobs 3000 --concurrency 50
    .venv/bin/python bench/overhead.py --ttft-ms 100 --jobs 3000 --concurrency 5,50

Prints a table and writes ``bench/results/overhead.json``. ``--profile`` instead runs one
trial of one side under cProfile (event-loop thread only) and prints the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).parent / "results" / "overhead.json"
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 16
LANEWAY_BIN = Path(sys.executable).with_name("laneway")


# -- the local API in its own process ----------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def local_api_process(*extra: str) -> Iterator[str]:
    """``laneway local --engine echo`` on a free port, as a child process; yields its URL."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [str(LANEWAY_BIN), "local", "--engine", "echo", "--port", str(port), *extra],
            stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        tail = log.read().decode(errors="replace")[-2000:]
                        raise RuntimeError(f"the local API did not start: {tail}") from None
                    time.sleep(0.05)
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def make_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"job-{i}", "prompt": f"short prompt number {i}"}) + "\n")
    return path


# -- the two sides -----------------------------------------------------------------------
@dataclass
class Trial:
    side: str  # "laneway" or "plain"
    concurrency: int
    repeat: int
    jobs: int
    ok: int
    errors: int
    wall_s: float
    jobs_per_s: float
    #: CPU seconds of this (client) process during the trial, every thread.
    cpu_s: float
    cpu_ms_per_job: float
    #: laneway only: the runner's send phase (claim, send, commit), without ingest/output.
    send_s: float | None = None


async def laneway_side(base_url: str, inp: Path, workdir: Path, *, concurrency: int
                       ) -> tuple[int, int, float | None]:
    from laneway.jobs.formats import JobDefaults
    from laneway.provider.client import Provider
    from laneway.runs.library import run
    from laneway.runs.progress import Progress

    db = workdir / "ledger.db"
    out = workdir / "out.jsonl"
    last: dict[str, Progress] = {}
    provider = Provider.at(base_url, api_key="bench")
    try:
        summary = await run(inp, out, provider=provider, db=db, concurrency=concurrency,
                            mode="realtime",
                            defaults=JobDefaults(model=MODEL, max_tokens=MAX_TOKENS),
                            run_name="bench", on_progress=lambda p: last.update(p=p))
    finally:
        await provider.aclose()
    send_s = last["p"].elapsed_s if last else None
    return summary.succeeded, summary.errored + summary.pending, send_s


async def plain_side(base_url: str, inp: Path, *, concurrency: int) -> tuple[int, int]:
    """The pattern laneway replaces: a semaphore, one create() per job, a list of results."""
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key="bench", max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    results: list[tuple[str, Any]] = []

    async def one(job: dict[str, Any]) -> None:
        async with sem:
            try:
                message = await client.messages.create(
                    model=MODEL, max_tokens=MAX_TOKENS,
                    messages=[{"role": "user", "content": job["prompt"]}])
            except anthropic.APIError as exc:
                results.append((job["id"], exc))
                return
        results.append((job["id"], message))

    try:
        with inp.open() as f:
            jobs = [json.loads(line) for line in f if line.strip()]
        await asyncio.gather(*(one(j) for j in jobs))
    finally:
        await client.close()
    errors = sum(isinstance(r, Exception) for _, r in results)
    return len(results) - errors, errors


async def trial(side: str, base_url: str, inp: Path, tmp: Path, *, jobs: int,
                concurrency: int, repeat: int) -> Trial:
    workdir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{side}-{concurrency}-"))
    send_s: float | None = None
    cpu0 = time.process_time()
    started = time.perf_counter()
    if side == "laneway":
        ok, errors, send_s = await laneway_side(base_url, inp, workdir, concurrency=concurrency)
    else:
        ok, errors = await plain_side(base_url, inp, concurrency=concurrency)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    shutil.rmtree(workdir, ignore_errors=True)
    return Trial(side, concurrency, repeat, jobs, ok, errors, round(wall, 3),
                 round(jobs / wall, 1), round(cpu, 3), round(cpu / jobs * 1000, 3),
                 None if send_s is None else round(send_s, 3))


# -- the benchmark -----------------------------------------------------------------------
def _median(trials: list[Trial], side: str, c: int, attr: str = "jobs_per_s") -> float:
    return float(statistics.median(getattr(t, attr) for t in trials
                                   if t.side == side and t.concurrency == c))


async def bench(base_url: str, tmp: Path, *, jobs: int, concurrencies: list[int],
                repeats: int, console: Console) -> list[Trial]:
    inp = make_input(tmp / "in.jsonl", jobs)
    warm = make_input(tmp / "warm.jsonl", 500)
    for side in ("laneway", "plain"):  # imports, connections, the server's code paths
        await trial(side, base_url, warm, tmp, jobs=500, concurrency=50, repeat=-1)
    trials: list[Trial] = []
    for c in concurrencies:
        for rep in range(repeats):
            order = ("laneway", "plain") if rep % 2 == 0 else ("plain", "laneway")
            for side in order:
                t = await trial(side, base_url, inp, tmp, jobs=jobs, concurrency=c, repeat=rep)
                trials.append(t)
                extra = f" (send phase {t.send_s:.1f} s)" if t.send_s is not None else ""
                console.print(f"c={c:<4} rep {rep} {side:8} {t.jobs_per_s:8.1f} jobs/s "
                              f"{t.wall_s:7.1f} s cpu {t.cpu_ms_per_job:.2f} ms/job "
                              f"ok={t.ok} errors={t.errors}{extra}", highlight=False)
    return trials


def summarize(trials: list[Trial], concurrencies: list[int]) -> list[dict[str, Any]]:
    rows = []
    for c in concurrencies:
        lw, pl = _median(trials, "laneway", c), _median(trials, "plain", c)
        send = [t.jobs / t.send_s for t in trials
                if t.side == "laneway" and t.concurrency == c and t.send_s]
        rows.append({"concurrency": c, "laneway_jobs_per_s": lw, "plain_jobs_per_s": pl,
                     "ratio": round(lw / pl, 3),
                     "laneway_cpu_ms_per_job": _median(trials, "laneway", c, "cpu_ms_per_job"),
                     "plain_cpu_ms_per_job": _median(trials, "plain", c, "cpu_ms_per_job"),
                     "laneway_send_phase_jobs_per_s": round(statistics.median(send), 1)
                     if send else None,
                     "goal_met": lw / pl >= 1.0})
    return rows


def _table(rows: list[dict[str, Any]], jobs: int, repeats: int) -> Table:
    table = Table(title=f"laneway runner vs plain semaphore pattern — {jobs} jobs, echo engine "
                        f"(separate process), median of {repeats}")
    for name in ("concurrency", "laneway jobs/s", "plain jobs/s", "laneway/plain",
                 "CPU ms/job laneway", "CPU ms/job plain", "laneway send phase jobs/s",
                 "goal >= 1.0x"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(str(r["concurrency"]), f"{r['laneway_jobs_per_s']:.1f}",
                      f"{r['plain_jobs_per_s']:.1f}", f"{r['ratio']:.2f}x",
                      f"{r['laneway_cpu_ms_per_job']:.2f}", f"{r['plain_cpu_ms_per_job']:.2f}",
                      "" if r["laneway_send_phase_jobs_per_s"] is None
                      else f"{r['laneway_send_phase_jobs_per_s']:.1f}",
                      "yes" if r["goal_met"] else "NO")
    return table


def profile(side: str, base_url: str, tmp: Path, *, jobs: int, concurrency: int,
            top: int) -> None:
    inp = make_input(tmp / "in.jsonl", jobs)
    asyncio.run(trial(side, base_url, make_input(tmp / "warm.jsonl", 200), tmp, jobs=200,
                      concurrency=concurrency, repeat=-1))
    prof = cProfile.Profile()
    started = time.perf_counter()
    prof.enable()
    t = asyncio.run(trial(side, base_url, inp, tmp, jobs=jobs, concurrency=concurrency,
                          repeat=0))
    prof.disable()
    wall = time.perf_counter() - started
    print(f"{side}: {jobs} jobs at concurrency {concurrency}: {t.jobs_per_s} jobs/s under "
          f"the profiler ({wall:.1f} s); event-loop thread only")
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
        print(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000, help="jobs per trial (20000)")
    parser.add_argument("--concurrency", default="5,50,200",
                        help="requests in flight, comma-separated (5,50,200)")
    parser.add_argument("--repeats", type=int, default=2, help="trials per side (2)")
    parser.add_argument("--profile", choices=("laneway", "plain"),
                        help="profile one trial of this side instead (first concurrency)")
    parser.add_argument("--top", type=int, default=40, help="functions shown by --profile")
    parser.add_argument("--ttft-ms", type=float, default=0.0,
                        help="the echo engine's time to first token (0: the client is the "
                             "bottleneck; a realistic latency makes both sides wait on the API)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    console = Console(stderr=True)
    if args.ttft_ms and args.output == RESULTS:
        args.output = RESULTS.with_name(f"overhead_ttft{args.ttft_ms:g}ms.json")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="laneway-overhead-") as tmpdir, \
            local_api_process("--ttft-ms", str(args.ttft_ms)) as base_url:
        tmp = Path(tmpdir)
        if args.profile:
            profile(args.profile, base_url, tmp, jobs=args.jobs,
                    concurrency=concurrencies[0], top=args.top)
            return 0
        trials = asyncio.run(bench(base_url, tmp, jobs=args.jobs, concurrencies=concurrencies,
                                   repeats=args.repeats, console=console))
    runtime = time.perf_counter() - began
    rows = summarize(trials, concurrencies)
    Console(width=140).print(_table(rows, args.jobs, args.repeats))
    console.print(f"benchmark runtime {runtime:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "overhead",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "anthropic_sdk": anthropic.__version__,
                    "load_avg_at_end": os.getloadavg()},
        "setup": {"jobs": args.jobs, "max_tokens": MAX_TOKENS, "model": MODEL,
                  "engine": "echo", "ttft_ms": args.ttft_ms,
                  "server": "separate process: laneway local --engine echo",
                  "repeats": args.repeats, "statistic": "median",
                  "laneway": "runs.run() end to end (ingest, run, results file), fresh "
                             "SQLite ledger per trial",
                  "plain": "AsyncAnthropic(max_retries=0) + Semaphore + messages.create, "
                           "results in a list"},
        "runtime_s": round(runtime, 1),
        "summary": rows,
        "trials": [asdict(t) for t in trials],
    }, indent=2) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
