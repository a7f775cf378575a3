"""Benchmark: what SIGKILL costs a laneway run — results lost, duplicated, sent twice.

A run of ``--jobs`` (10,000) short prompts, ``python -m laneway run IN -o OUT
--mode realtime --concurrency C -q`` in a subprocess, is killed with SIGKILL ``--kills`` (5) times at
random moments and resumed each time with the same command; the last one runs to the
end. The local API runs inside this process (echo engine, 5 ms before the first
token), so its request counter can be read.

A "random moment" is a random 0-250 ms after the ledger first shows a random number of
succeeded jobs (drawn over the run, sorted; ``--seed``): the delay is many times the
20 ms group-commit period, so the kill is not tied to a commit (seeing a commit and
killing at once would catch few results waiting for one), and every kill lands while
requests are in flight and results are waiting to be committed.

Reported, with the goals:

- results lost: input ids with no succeeded line in the results file (0);
- results duplicated: lines of the results file beyond one per id (0);
- requests sent twice per kill: (requests the server received - jobs) / kills,
  at most the concurrency (a request in flight, or answered but not yet committed,
  when the process dies is sent again by the next run).

    .venv/bin/python bench/crash.py [--jobs 10000] [--kills 5] [--concurrency 32] [--seed 4]

Prints a table and writes ``bench/results/crash.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from laneway.local import LocalConfig, start_local
from scale import RUN, Ledger, env_for

RESULTS = Path(__file__).parent / "results" / "crash.json"
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 16


def make_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"job-{i}", "prompt": f"short prompt number {i}"}) + "\n")
    return path


@dataclass
class Attempt:
    n: int
    target: int | None  # succeeded count that triggers the kill (None: run to the end)
    succeeded_before: int
    succeeded_at_kill: int | None
    succeeded_after: int
    requests_during: int  # requests the server received while this process lived
    #: requests_during - results it committed: answers lost by the kill, sent again later
    lost_in_flight: int
    seconds: float
    exit_code: int


class _CountDisconnects(logging.Filter):
    """Count and hide the server's tracebacks for requests cut by a kill before it read
    their body (uvicorn then reports a disconnect; such requests are not counted)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if type(exc).__name__ == "ClientDisconnect":
                self.count += 1
                return False
            if isinstance(exc, BaseExceptionGroup):
                exc = exc.exceptions[0] if exc.exceptions else None
            else:
                exc = exc.__cause__ or exc.__context__
        return True


def run_cmd(inp: Path, out: Path, db: Path, concurrency: int) -> list[str]:
    return [sys.executable, "-m", "laneway", "run", str(inp), "-o", str(out), "--run", RUN,
            "--db", str(db), "--mode", "realtime", "--concurrency", str(concurrency),
            "--model", MODEL,
            "--max-tokens", str(MAX_TOKENS), "-q"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    rng = random.Random(args.seed)
    began = time.perf_counter()
    cut = _CountDisconnects()
    logging.getLogger("uvicorn.error").addFilter(cut)
    running = start_local(LocalConfig(engine="echo", ttft_ms=5))
    attempts: list[Attempt] = []
    try:
        with tempfile.TemporaryDirectory(prefix="laneway-crash-") as tmpdir:
            tmp = Path(tmpdir)
            inp = make_input(tmp / "in.jsonl", args.jobs)
            out, db = tmp / "out.jsonl", tmp / "ledger.db"
            env = env_for(running.base_url)
            ledger = Ledger(db)
            # Kill points spread over the run, leaving the last stretch to the final run.
            targets: list[int | None] = [
                *sorted(rng.sample(range(1, int(args.jobs * 0.95)), args.kills)), None]
            for n, target in enumerate(targets):
                before = ledger.succeeded()
                requests0 = running.api.stats["requests"]
                started = time.perf_counter()
                proc = subprocess.Popen(run_cmd(inp, out, db, args.concurrency), env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                at_kill: int | None = None
                if target is not None:
                    while proc.poll() is None:
                        done = ledger.succeeded()
                        if done >= target:
                            time.sleep(rng.uniform(0.0, 0.25))
                            at_kill = ledger.succeeded()
                            proc.send_signal(signal.SIGKILL)
                            break
                        time.sleep(0.005)
                code = proc.wait(timeout=600)
                seconds = time.perf_counter() - started
                time.sleep(0.3)  # let the server count requests already on the wire
                after = ledger.succeeded()
                during = running.api.stats["requests"] - requests0
                att = Attempt(n, target, before, at_kill, after, during,
                              during - (after - before), round(seconds, 2), code)
                attempts.append(att)
                what = "ran to the end" if target is None else (
                    f"SIGKILL at {at_kill} succeeded (target {target})")
                console.print(f"process {n}: {what}; ledger {before} -> {after} succeeded, "
                              f"{att.requests_during} requests, {seconds:.1f} s, exit {code}",
                              highlight=False)
                if target is not None and code != -signal.SIGKILL:
                    raise RuntimeError(f"process {n} was not killed (exit {code}): the run "
                                       "finished before its kill point")
            ledger.close()
            lines = out.read_text().splitlines() if out.exists() else []
            ids: Counter[str] = Counter()
            ok_ids: set[str] = set()
            for line in lines:
                row = json.loads(line)
                ids[row["custom_id"]] += 1
                if row["result"]["type"] == "succeeded":
                    ok_ids.add(row["custom_id"])
            expected = {f"job-{i}" for i in range(args.jobs)}
    finally:
        running.stop()
    requests = running.api.stats["requests"]
    lost = len(expected - ok_ids)
    duplicated = sum(c - 1 for c in ids.values() if c > 1)
    extra = requests - args.jobs
    per_kill = extra / args.kills if args.kills else 0.0
    runtime = time.perf_counter() - began
    summary = {
        "jobs": args.jobs, "kills": args.kills, "concurrency": args.concurrency,
        "output_lines": len(lines), "results_lost": lost, "results_duplicated": duplicated,
        "unexpected_ids": len(set(ids) - expected), "requests_received": requests,
        "requests_sent_twice": extra, "sent_twice_per_kill": round(per_kill, 2),
        "goals_met": {"no_loss": lost == 0, "no_duplicates": duplicated == 0,
                      "sent_twice_per_kill_le_concurrency": per_kill <= args.concurrency},
        "final_exit_code": attempts[-1].exit_code,
        #: requests cut by a kill before the server read their body (not counted above)
        "requests_cut_before_the_server_read_them": cut.count,
    }

    table = Table(title=f"SIGKILL x{args.kills} during a {args.jobs:,}-job run, resumed each "
                        f"time (--concurrency {args.concurrency}, echo engine, ttft 5 ms)")
    for name in ("measure", "value", "goal", "met"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    table.add_row("results lost", str(lost), "0", "yes" if lost == 0 else "NO")
    table.add_row("results duplicated in the output", str(duplicated), "0",
                  "yes" if duplicated == 0 else "NO")
    table.add_row("results file lines", f"{len(lines):,}", f"{args.jobs:,}",
                  "yes" if len(lines) == args.jobs else "NO")
    table.add_row("requests received by the server", f"{requests:,}", "", "")
    table.add_row("requests sent twice per kill", f"{per_kill:.1f}",
                  f"<= {args.concurrency}", "yes" if per_kill <= args.concurrency else "NO")
    table.add_row("final run's exit code", str(attempts[-1].exit_code), "0",
                  "yes" if attempts[-1].exit_code == 0 else "NO")
    per = Table(title="processes")
    for name in ("#", "kill at (target)", "succeeded before → after", "requests",
                 "answered, not committed", "s", "exit"):
        per.add_column(name, justify="right")
    for a in attempts:
        per.add_row(str(a.n), "end" if a.target is None else f"{a.succeeded_at_kill} "
                    f"({a.target})", f"{a.succeeded_before} → {a.succeeded_after}",
                    str(a.requests_during), str(a.lost_in_flight), f"{a.seconds:.1f}",
                    str(a.exit_code))
    wide = Console(width=130)
    wide.print(per)
    wide.print(table)
    console.print(f"benchmark runtime {runtime:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "crash",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(), "load_avg_at_end": os.getloadavg()},
        "setup": {"jobs": args.jobs, "kills": args.kills, "concurrency": args.concurrency,
                  "seed": args.seed, "engine": "echo, in-process, ttft_ms=5",
                  "command": "python -m laneway run IN -o OUT --run big --db LEDGER "
                             f"--mode realtime --concurrency {args.concurrency} -q",
                  "kill_moment": "a random 0-250 ms after the ledger first shows a random "
                                 "number of succeeded jobs"},
        "runtime_s": round(runtime, 1),
        "summary": summary,
        "processes": [asdict(a) for a in attempts],
    }, indent=2) + "\n")
    console.print(f"wrote {args.output}")
    ok = lost == 0 and duplicated == 0 and per_kill <= args.concurrency
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
