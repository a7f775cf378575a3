"""Benchmark: laneway at a million jobs — ingest rate, peak memory, re-run of a finished run.

Everything laneway does here runs as a user runs it, in a subprocess:
``python -m laneway run IN --run big --db LEDGER --mode realtime --concurrency 64
--max-tokens 16 -q`` (``--mode realtime``: ``auto`` may plan native batches for a run this
size), against the local API's echo engine (zero latency) in a separate process:

1. **ingest + first jobs**: one process ingests the whole generated input (1,000,000
   short prompts, by default) and starts sending; once ``--run-jobs`` (100,000) have
   succeeded, it gets SIGINT and stops cleanly (writing the results it has to ``-o``).
   The bench polls the ledger (a cheap indexed count, not ``Store.counts``, which sums
   over every row) to time the ingest and the run, and ``/proc/PID/status`` for memory;
   the peak RSS is the child's own ``ru_maxrss`` from ``os.wait4``. Goal: < 150 MB.
2. **re-run of a finished run**: running the other 900,000 jobs would take about an hour
   here, so the bench marks them finished directly in the SQLite file (copying the
   result, usage and cost of a real one), sets the run ``done``, then times the same
   command again: it hashes the input, finds the run, counts, and finds nothing to send.
   Timed without ``-o``, with ``-o`` (first time: writes all the results), and with ``-o``
   again (the file is up to date, not rewritten). Goal: < 10 s.
3. **plain pattern, for comparison**: a semaphore, ``messages.create`` per job, results
   kept in a list, over the first ``--plain-jobs`` (50,000) lines, in a subprocess whose
   peak RSS is measured the same way.

    .venv/bin/python bench/scale.py [--lines 1000000] [--run-jobs 100000] [--plain-jobs 50000]

Prints a table and writes ``bench/results/scale.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from overhead import local_api_process

RESULTS = Path(__file__).parent / "results" / "scale.json"
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 16
RUN = "big"
MB = 1024 * 1024
GOAL_RSS_MB = 150
GOAL_RERUN_S = 10


def make_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        batch: list[str] = []
        for i in range(n):
            batch.append(json.dumps({"id": f"job-{i}", "prompt": f"short prompt number {i}"}))
            if len(batch) == 10000:
                f.write("\n".join(batch) + "\n")
                batch = []
        if batch:
            f.write("\n".join(batch) + "\n")
    return path


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a live process, in bytes (empty once it has gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    out[name] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def wait_rusage(proc: subprocess.Popen[bytes], *, block: bool = True
                ) -> tuple[int, int] | None:
    """Reap ``proc``: (exit code, its own peak RSS in bytes), or None if it still runs.

    ``os.wait4`` instead of ``Popen.wait``/``poll``, which would reap the child first
    and lose its resource usage: never call those on a process passed here.
    """
    pid, status, usage = os.wait4(proc.pid, 0 if block else os.WNOHANG)
    if pid == 0:
        return None
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024  # Linux: KiB


def run_measured(cmd: list[str], env: dict[str, str] | None = None
                 ) -> tuple[int, int, str, str, float]:
    """Run ``cmd`` to the end: (exit code, peak RSS bytes, stdout, stderr, wall s)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        reaped = wait_rusage(proc)
        assert reaped is not None
        code, peak = reaped
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        return (code, peak, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), wall)


class Ledger:
    """Cheap read-only looks at the ledger while laneway writes it (WAL: no blocking)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def _c(self) -> sqlite3.Connection | None:
        if self.conn is None and self.path.exists():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                conn.execute("SELECT 1 FROM runs, jobs LIMIT 1")
            except sqlite3.OperationalError:  # not migrated yet
                conn.close()
                return None
            self.conn = conn
        return self.conn

    def run_row(self) -> tuple[int, int, bool] | None:
        """(total, ingested_lines, ingest_done) of the run, if it exists yet."""
        c = self._c()
        if c is None:
            return None
        row = c.execute("SELECT total, ingested_lines, ingest_done FROM runs WHERE id = ?",
                        (RUN,)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), bool(row[2]))

    def succeeded(self) -> int:
        c = self._c()
        if c is None:
            return 0
        # Answered from the (run_id, status, seq) index: no table rows are read.
        return int(c.execute("SELECT count(*) FROM jobs WHERE run_id = ? AND status = ?",
                             (RUN, "succeeded")).fetchone()[0])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def laneway_cmd(inp: Path, db: Path, out: Path | None, concurrency: int) -> list[str]:
    cmd = [sys.executable, "-m", "laneway", "run", str(inp), "--run", RUN, "--db", str(db),
           "--mode", "realtime", "--concurrency", str(concurrency),
           "--max-tokens", str(MAX_TOKENS),
           "--model", MODEL, "-q"]
    if out is not None:
        cmd += ["-o", str(out)]
    return cmd


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_BASE_URL"] = base_url
    env["COLUMNS"] = "200"
    return env


@dataclass
class Phase1:
    lines: int
    run_jobs: int
    ingest_wall_s: float = 0.0  # process start -> ingest_done (startup + hashing + ingest)
    ingest_only_s: float = 0.0  # first chunk seen -> ingest_done
    first_chunk_s: float = 0.0  # process start -> first chunk committed (startup + hash)
    run_s: float = 0.0  # ingest done -> run_jobs succeeded
    stop_s: float = 0.0  # SIGINT -> exit (in-flight requests, release, results file)
    succeeded_at_exit: int = 0
    exit_code: int = 0
    peak_rss_mb: float = 0.0
    peak_rss_ingest_mb: float = 0.0  # VmHWM when ingest was seen done
    rss_at_ingest_done_mb: float = 0.0
    rss_samples: list[tuple[float, float]] = field(default_factory=list)  # (s, MB)

    @property
    def ingest_lines_per_s(self) -> float:
        return self.lines / self.ingest_wall_s if self.ingest_wall_s else 0.0

    @property
    def ingest_only_lines_per_s(self) -> float:
        return self.lines / self.ingest_only_s if self.ingest_only_s else 0.0

    @property
    def jobs_per_s(self) -> float:
        return self.run_jobs / self.run_s if self.run_s else 0.0


def phase1(inp: Path, db: Path, out: Path, env: dict[str, str], *, lines: int,
           run_jobs: int, concurrency: int, console: Console, timeout_s: float) -> Phase1:
    res = Phase1(lines=lines, run_jobs=run_jobs)
    ledger = Ledger(db)
    errfile = tempfile.TemporaryFile()  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(laneway_cmd(inp, db, out, concurrency), env=env,
                            stdout=subprocess.DEVNULL, stderr=errfile)
    started = time.perf_counter()
    first_chunk = ingest_done = sigint_at = None
    last_print = last_sample = 0.0
    reaped: tuple[int, int] | None = None
    try:
        while (reaped := wait_rusage(proc, block=False)) is None:
            time.sleep(0.2)
            now = time.perf_counter() - started
            status = proc_status(proc.pid)
            if now - last_sample >= 1.0 and "VmRSS" in status:
                last_sample = now
                res.rss_samples.append((round(now, 1), round(status["VmRSS"] / MB, 1)))
            if ingest_done is None:
                row = ledger.run_row()
                if row is not None and row[1] > 0 and first_chunk is None:
                    first_chunk = now
                if row is not None and row[2]:
                    ingest_done = now
                    res.peak_rss_ingest_mb = status.get("VmHWM", 0) / MB
                    res.rss_at_ingest_done_mb = status.get("VmRSS", 0) / MB
                    console.print(f"ingest done: {row[0]} jobs in {now:.1f} s; "
                                  f"RSS {res.rss_at_ingest_done_mb:.0f} MB, "
                                  f"peak {res.peak_rss_ingest_mb:.0f} MB", highlight=False)
                elif row is not None and now - last_print > 10:
                    last_print = now
                    console.print(f"  ingesting: {row[1]} lines at {now:.0f} s", highlight=False)
                continue
            if sigint_at is None:
                done = ledger.succeeded()
                if now - last_print > 15:
                    last_print = now
                    console.print(f"  running: {done} succeeded at {now:.0f} s, RSS "
                                  f"{status.get('VmRSS', 0) / MB:.0f} MB", highlight=False)
                if done >= run_jobs:
                    sigint_at = now
                    res.run_s = now - ingest_done
                    proc.send_signal(signal.SIGINT)
                    console.print(f"{done} succeeded {res.run_s:.1f} s after ingest: SIGINT",
                                  highlight=False)
            if now > timeout_s:
                raise TimeoutError(f"phase 1 took over {timeout_s:.0f} s")
    except BaseException:
        proc.kill()
        raise
    finally:
        if reaped is None:
            reaped = wait_rusage(proc)
        assert reaped is not None
        code, peak = reaped
        errfile.seek(0)
        stderr = errfile.read().decode(errors="replace")
        errfile.close()
    ended = time.perf_counter() - started
    res.exit_code = code
    res.peak_rss_mb = peak / MB
    res.stop_s = ended - sigint_at if sigint_at is not None else 0.0
    if first_chunk is None or ingest_done is None or sigint_at is None:
        raise RuntimeError(f"laneway exited early ({code}): {stderr[-3000:]}")
    res.first_chunk_s = first_chunk
    res.ingest_wall_s = ingest_done
    res.ingest_only_s = ingest_done - first_chunk
    res.succeeded_at_exit = ledger.succeeded()
    ledger.close()
    return res


def mark_finished(db: Path) -> tuple[int, float]:
    """Make every job of the run succeeded, like a real one; returns (rows, seconds)."""
    started = time.perf_counter()
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    try:
        sample = conn.execute(
            "SELECT result, input_tokens, output_tokens, cost_usd, priced FROM jobs "
            "WHERE run_id = ? AND status = 'succeeded' ORDER BY seq LIMIT 1", (RUN,)).fetchone()
        if sample is None:
            raise RuntimeError("no succeeded job to copy")
        now = time.time()
        conn.execute("BEGIN")
        cur = conn.execute(
            "UPDATE jobs SET status = 'succeeded', result = ?, input_tokens = ?, "
            "output_tokens = ?, cache_creation_input_tokens = 0, cache_read_input_tokens = 0, "
            "cost_usd = ?, priced = ?, attempts = 1, mode = 'realtime', claimed_by = NULL, "
            "lease_until = NULL, updated_at = ?, finished_at = ? "
            "WHERE run_id = ? AND status != 'succeeded'",
            (*sample, now, now, RUN))
        rows = cur.rowcount
        conn.execute("UPDATE runs SET status = 'done', updated_at = ? WHERE id = ?", (now, RUN))
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return rows, time.perf_counter() - started


@dataclass
class Rerun:
    label: str
    wall_s: float
    exit_code: int
    peak_rss_mb: float
    output_lines: int | None = None


def rerun(label: str, inp: Path, db: Path, out: Path | None, env: dict[str, str], *,
          concurrency: int) -> Rerun:
    code, peak, _, stderr, wall = run_measured(laneway_cmd(inp, db, out, concurrency), env)
    if code != 0:
        raise RuntimeError(f"re-run {label} exited {code}: {stderr[-3000:]}")
    if "Traceback" in stderr or "succeeded" not in stderr:
        raise RuntimeError(f"re-run {label}: unexpected output: {stderr[-3000:]}")
    lines = None
    if out is not None:
        with out.open("rb") as f:
            lines = sum(1 for _ in f)
    return Rerun(label, wall, code, peak / MB, lines)


def startup(env: dict[str, str]) -> tuple[float, float]:
    """Wall time and peak RSS of ``python -m laneway run --help`` (imports, no work)."""
    _, peak, _, _, wall = run_measured([sys.executable, "-m", "laneway", "run", "--help"], env)
    return wall, peak / MB


# -- the plain pattern, in its own process ---------------------------------------------
def plain_child(inp: Path, n: int, base_url: str, concurrency: int) -> None:
    """Run the plain pattern over the first ``n`` lines; print a JSON line of facts."""
    import anthropic

    baseline = proc_status(os.getpid()).get("VmRSS", 0)

    async def main() -> tuple[int, int]:
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

        jobs = []
        with inp.open() as f:
            for i, line in enumerate(f):
                if i >= n:
                    break
                jobs.append(json.loads(line))
        await asyncio.gather(*(one(j) for j in jobs))
        await client.close()
        errors = sum(isinstance(r, Exception) for _, r in results)
        return len(results) - errors, errors

    started = time.perf_counter()
    ok, errors = asyncio.run(main())
    print(json.dumps({"ok": ok, "errors": errors, "wall_s": time.perf_counter() - started,
                      "baseline_rss_mb": baseline / MB,
                      "hwm_mb": proc_status(os.getpid()).get("VmHWM", 0) / MB}))


def plain(inp: Path, n: int, base_url: str, concurrency: int) -> dict[str, Any]:
    code, peak, out, err, _ = run_measured(
        [sys.executable, __file__, "--plain-child", str(inp), str(n), base_url,
         str(concurrency)])
    if code != 0:
        raise RuntimeError(f"plain pattern exited {code}: {err[-3000:]}")
    facts: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    facts["peak_rss_mb"] = peak / MB
    facts["jobs"] = n
    return facts


# -- report ------------------------------------------------------------------------------
def _table(p1: Phase1, reruns: list[Rerun], plain_facts: dict[str, Any] | None,
           start_s: float, start_mb: float) -> Table:
    t = Table(title=f"laneway at scale: {p1.lines:,}-line input, --concurrency 64, echo engine "
                    "(separate process)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("goal", justify="right")
    t.add_column("met", justify="center")

    def row(name: str, value: str, goal: str = "", met: bool | None = None) -> None:
        t.add_row(name, value, goal, "" if met is None else ("yes" if met else "NO"))

    row("ingest rate, whole command (start → ingest done)",
        f"{p1.ingest_lines_per_s:,.0f} lines/s ({p1.ingest_wall_s:.1f} s)")
    row("ingest rate, ingest proper (first chunk → done)",
        f"{p1.ingest_only_lines_per_s:,.0f} lines/s ({p1.ingest_only_s:.1f} s)")
    row("  of which start-up + hashing the input", f"{p1.first_chunk_s:.1f} s")
    row("peak RSS during ingest", f"{p1.peak_rss_ingest_mb:.0f} MB")
    row(f"run: first {p1.run_jobs:,} jobs after ingest",
        f"{p1.jobs_per_s:,.0f} jobs/s ({p1.run_s:.0f} s)")
    row("SIGINT → exit (in flight, release, results file)",
        f"{p1.stop_s:.1f} s, exit {p1.exit_code}, {p1.succeeded_at_exit:,} succeeded")
    row(f"peak RSS, ingest {p1.lines:,} + run {p1.run_jobs:,}", f"{p1.peak_rss_mb:.0f} MB",
        f"< {GOAL_RSS_MB} MB", p1.peak_rss_mb < GOAL_RSS_MB)
    row("python -m laneway run --help (start-up only)",
        f"{start_s:.2f} s, {start_mb:.0f} MB")
    for r in reruns:
        goal = f"< {GOAL_RERUN_S} s"
        row(f"re-run of the finished {p1.lines:,}-job run, {r.label}",
            f"{r.wall_s:.1f} s, {r.peak_rss_mb:.0f} MB"
            + (f", {r.output_lines:,} lines" if r.output_lines is not None else ""),
            goal, r.wall_s < GOAL_RERUN_S)
    if plain_facts is not None:
        n = plain_facts["jobs"]
        peak, base = plain_facts["peak_rss_mb"], plain_facts["baseline_rss_mb"]
        row(f"plain pattern, {n:,} jobs: peak RSS",
            f"{peak:.0f} MB (+{peak - base:.0f} MB over its {base:.0f} MB at start)")
        row(f"plain pattern, {n:,} jobs: rate", f"{n / plain_facts['wall_s']:,.0f} jobs/s")
    return t


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--plain-child":
        plain_child(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="input lines (1000000)")
    parser.add_argument("--run-jobs", type=int, default=100_000,
                        help="jobs run before SIGINT (100000)")
    parser.add_argument("--plain-jobs", type=int, default=50_000,
                        help="jobs of the plain pattern, 0 to skip (50000)")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--timeout-s", type=float, default=1500,
                        help="give up on the first phase after this long")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    began = time.perf_counter()
    reruns: list[Rerun] = []
    plain_facts: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="laneway-scale-") as tmpdir, \
            local_api_process() as base_url:
        tmp = Path(tmpdir)
        env = env_for(base_url)
        t0 = time.perf_counter()
        inp = make_input(tmp / "in.jsonl", args.lines)
        console.print(f"generated {args.lines:,} lines ({inp.stat().st_size / MB:.0f} MB) in "
                      f"{time.perf_counter() - t0:.1f} s", highlight=False)
        start_s, start_mb = startup(env)
        db, out = tmp / "ledger.db", tmp / "out.jsonl"
        p1 = phase1(inp, db, out, env, lines=args.lines, run_jobs=args.run_jobs,
                    concurrency=args.concurrency, console=console, timeout_s=args.timeout_s)
        console.print(f"phase 1: peak RSS {p1.peak_rss_mb:.0f} MB", highlight=False)
        rows, mark_s = mark_finished(db)
        console.print(f"marked {rows:,} jobs succeeded in the ledger in {mark_s:.1f} s "
                      f"(ledger {db.stat().st_size / MB:.0f} MB)", highlight=False)
        out.unlink(missing_ok=True)
        for label, o in (("without -o", None), ("with -o, first (writes the results)", out),
                         ("with -o, again (results file up to date)", out),
                         ("without -o, again", None)):
            r = rerun(label, inp, db, o, env, concurrency=args.concurrency)
            console.print(f"re-run {label}: {r.wall_s:.1f} s, peak RSS {r.peak_rss_mb:.0f} MB",
                          highlight=False)
            reruns.append(r)
        if args.plain_jobs:
            plain_facts = plain(inp, args.plain_jobs, base_url, args.concurrency)
            console.print(f"plain pattern: {plain_facts}", highlight=False)
    runtime = time.perf_counter() - began
    Console(width=150).print(_table(p1, reruns, plain_facts, start_s, start_mb))
    console.print(f"benchmark runtime {runtime:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    p1_json = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(p1).items()}
    p1_json.update(ingest_lines_per_s=round(p1.ingest_lines_per_s, 1),
                   ingest_only_lines_per_s=round(p1.ingest_only_lines_per_s, 1),
                   jobs_per_s=round(p1.jobs_per_s, 1))
    args.output.write_text(json.dumps({
        "benchmark": "scale",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_at_end": os.getloadavg()},
        "setup": {"lines": args.lines, "run_jobs": args.run_jobs,
                  "concurrency": args.concurrency, "max_tokens": MAX_TOKENS, "model": MODEL,
                  "engine": "echo, separate process, zero latency",
                  "laneway": "python -m laneway run IN --run big --db LEDGER -o OUT "
                             "--mode realtime --concurrency 64 -q, in a subprocess; SIGINT "
                             "after run_jobs succeeded",
                  "rerun": "after marking every job succeeded directly in the SQLite "
                           "ledger (the run's other jobs were not sent)",
                  "peak_rss": "the child's ru_maxrss (os.wait4)"},
        "goals": {"peak_rss_mb_below": GOAL_RSS_MB, "rerun_s_below": GOAL_RERUN_S},
        "runtime_s": round(runtime, 1),
        "startup": {"wall_s": round(start_s, 3), "peak_rss_mb": round(start_mb, 1)},
        "phase1": p1_json,
        "mark_finished": {"rows": rows, "seconds": round(mark_s, 2)},
        "reruns": [{k: (round(v, 3) if isinstance(v, float) else v)
                    for k, v in vars(r).items()} for r in reruns],
        "plain": plain_facts,
    }, indent=2) + "\n")
    console.print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
