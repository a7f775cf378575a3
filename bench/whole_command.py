"""Benchmark: the whole ``laneway run`` command against the plain pattern's whole program.

What a user times: a process started, its input read, every request sent, its results
file written, the process gone. Both sides are separate Python processes against one
local API (``laneway local --engine echo``, zero latency unless ``--ttft-ms``, started
once, its own process) and the same JSONL file of ``--jobs`` short prompts (max_tokens 16):

- **laneway**: ``python -m laneway run IN -o OUT --mode realtime --concurrency C`` in a
  fresh directory (so a fresh ledger, ``.laneway/laneway.db``): start-up, ingest, the
  durable run, the results file. ``--mode realtime``: ``auto`` would choose native
  batches for a run this size (half price, which the plain pattern cannot do).
- **plain**: bench/_plain_whole.py, the guide's "Parallel batch with asyncio" code as it
  is, saving each result to a JSONL file as it completes (the guide's advice).
- **before** (with ``--before TREE``): the laneway side with ``PYTHONPATH=TREE/src``, a
  checkout of an earlier commit (``git worktree add ../before main``), in the same run.

Each laneway tree's modules are compiled to bytecode first (``compileall``), as ``pip
install`` does: where ``$PYTHONDONTWRITEBYTECODE`` is set, a source checkout would
otherwise compile its ~110 modules at every start (~50 ms), which no installed laneway does.

Each concurrency runs ``--pairs`` rounds of every side, the order rotated each round so
the machine's load weighs on all alike. Reported per side: the median wall time (with
its min-max spread), jobs/s, the process's CPU seconds (user+sys, from ``wait4``), and
laneway/plain: the ratio of the medians and the median (min-max) of the per-round ratios
(goal: >= 1.0x). The load average at each trial is kept. On a shared machine wall times
are noisy; CPU seconds are steadier.

    .venv/bin/python bench/whole_command.py [--jobs 5000] [--concurrency 5,50,200] [--pairs 5]
    .venv/bin/python bench/whole_command.py --before ../before --pairs 5
    .venv/bin/python bench/whole_command.py --profile 5 --jobs 5000   # cProfile, laneway side

Prints a table and writes ``bench/results/whole_command.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import RESULTS, local_api_process, print_table

HERE = Path(__file__).resolve().parent
MODEL = "claude-haiku-4-5"
MAX_TOKENS = 16


@dataclass
class Trial:
    side: str
    concurrency: int
    round: int
    jobs: int
    ok: int
    wall_s: float
    cpu_s: float
    load_1m: float


def make_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"job-{i}", "prompt": f"short prompt number {i}"}) + "\n")
    return path


def command(side: str, inp: Path, out: Path, concurrency: int) -> list[str]:
    if side == "plain":
        return [sys.executable, str(HERE / "_plain_whole.py"), str(inp), str(out),
                str(concurrency), str(MAX_TOKENS)]
    return [sys.executable, "-m", "laneway", "run", str(inp), "-o", str(out), "--mode",
            "realtime", "--concurrency", str(concurrency), "--model", MODEL,
            "--max-tokens", str(MAX_TOKENS), "--quiet"]


def environment(side: str, base_url: str, trees: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ, ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="bench")
    env.pop("PYTHONPATH", None)
    if side in trees:
        env["PYTHONPATH"] = str(trees[side] / "src")
    return env


def compile_tree(tree: Path) -> None:
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "src" / "laneway")],
                   check=True, stdout=subprocess.DEVNULL)


def count_ok(side: str, out: Path) -> int:
    if not out.exists():
        return 0
    ok = 0
    with out.open() as f:
        for line in f:
            row = json.loads(line)
            ok += (row["result"]["type"] == "succeeded") if side != "plain" else (
                not row["error"])
    return ok


def trial(side: str, base_url: str, inp: Path, tmp: Path, trees: dict[str, Path], *,
          jobs: int, concurrency: int, rnd: int) -> Trial:
    workdir = Path(tempfile.mkdtemp(dir=tmp, prefix=f"{side}-{concurrency}-"))
    out = workdir / "out.jsonl"
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(command(side, inp, out, concurrency), cwd=workdir,
                            env=environment(side, base_url, trees),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()  # the summary table (small): read before the wait
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} exited {proc.returncode}: {err.decode()[-2000:]}")
    ok = count_ok(side, out)
    shutil.rmtree(workdir, ignore_errors=True)
    return Trial(side, concurrency, rnd, jobs, ok, round(wall, 3),
                 round(usage.ru_utime + usage.ru_stime, 3), round(load, 2))


def bench(base_url: str, tmp: Path, trees: dict[str, Path], *, jobs: int,
          concurrencies: list[int], pairs: int) -> list[Trial]:
    sides = ["plain", *trees]
    for tree in trees.values():  # bytecode, as `pip install` writes it (the plain side's
        compile_tree(tree)       # SDK has its own; $PYTHONDONTWRITEBYTECODE may be set)
    inp = make_input(tmp / "in.jsonl", jobs)
    warm = make_input(tmp / "warm.jsonl", 300)
    for side in sides:  # bytecode caches, the page cache, the server's code paths
        trial(side, base_url, warm, tmp, trees, jobs=300, concurrency=50, rnd=-1)
    trials: list[Trial] = []
    for c in concurrencies:
        for rnd in range(pairs):
            k = rnd % len(sides)
            for side in sides[k:] + sides[:k]:
                t = trial(side, base_url, inp, tmp, trees, jobs=jobs, concurrency=c, rnd=rnd)
                trials.append(t)
                print(f"c={c:<4} round {rnd} {side:8} {t.wall_s:7.2f} s wall "
                      f"{t.cpu_s:6.2f} s CPU ok={t.ok}/{jobs} load {t.load_1m:.1f}", flush=True)
    return trials


def _walls(trials: list[Trial], side: str, c: int) -> list[Trial]:
    return sorted((t for t in trials if t.side == side and t.concurrency == c),
                  key=lambda t: t.round)


def summarize(trials: list[Trial], sides: list[str], concurrencies: list[int]
              ) -> list[dict[str, Any]]:
    rows = []
    for c in concurrencies:
        plain = _walls(trials, "plain", c)
        for side in sides:
            ts = _walls(trials, side, c)
            walls = [t.wall_s for t in ts]
            row: dict[str, Any] = {
                "concurrency": c, "side": side, "trials": len(ts),
                "wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
                "wall_s_max": max(walls),
                "jobs_per_s": round(ts[0].jobs / statistics.median(walls), 1),
                "cpu_s_median": statistics.median(t.cpu_s for t in ts),
                "ok_min": min(t.ok for t in ts), "jobs": ts[0].jobs,
                "load_1m_median": statistics.median(t.load_1m for t in ts)}
            if side != "plain":
                per = [p.wall_s / t.wall_s for p, t in zip(plain, ts, strict=True)]
                row |= {"vs_plain": round(statistics.median(p.wall_s for p in plain)
                                          / row["wall_s_median"], 3),
                        "vs_plain_per_round_median": round(statistics.median(per), 3),
                        "vs_plain_per_round_min": round(min(per), 3),
                        "vs_plain_per_round_max": round(max(per), 3)}
                row["goal_met"] = row["vs_plain"] >= 1.0
            rows.append(row)
    return rows


def show(rows: list[dict[str, Any]], title: str) -> None:
    print_table(title, ["c", "side", "wall s median (min-max)", "jobs/s", "CPU s",
                        "vs plain (medians)", "vs plain per round: median (min-max)",
                        "ok", "load"],
                [[r["concurrency"], r["side"],
                  f"{r['wall_s_median']:.2f} ({r['wall_s_min']:.2f}-{r['wall_s_max']:.2f})",
                  f"{r['jobs_per_s']:.0f}", f"{r['cpu_s_median']:.2f}",
                  f"{r['vs_plain']:.2f}x" if "vs_plain" in r else "",
                  f"{r['vs_plain_per_round_median']:.2f}x ({r['vs_plain_per_round_min']:.2f}"
                  f"-{r['vs_plain_per_round_max']:.2f})" if "vs_plain" in r else "",
                  f"{r['ok_min']}/{r['jobs']}", f"{r['load_1m_median']:.1f}"] for r in rows])


def profile(base_url: str, tmp: Path, *, jobs: int, concurrency: int, top: int) -> None:
    """One laneway trial under cProfile (the main thread: start-up, the event loop)."""
    inp = make_input(tmp / "in.jsonl", jobs)
    out, prof = tmp / "out.jsonl", tmp / "laneway.prof"
    cmd = command("laneway", inp, out, concurrency)
    cmd[1:3] = ["-m", "cProfile", "-o", str(prof), "-m", "laneway"]
    compile_tree(HERE.parent)
    started = time.perf_counter()
    subprocess.run(cmd, cwd=tmp, env=environment("laneway", base_url, {"laneway": HERE.parent}),
                   check=True, stdout=subprocess.DEVNULL)
    print(f"laneway run, {jobs} jobs at concurrency {concurrency}: "
          f"{time.perf_counter() - started:.2f} s under cProfile")
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(prof), stream=buf).sort_stats(key).print_stats(top)
        print(buf.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per trial (5000)")
    parser.add_argument("--concurrency", default="5,50,200", help="comma-separated (5,50,200)")
    parser.add_argument("--pairs", type=int, default=5, help="rounds per concurrency (5)")
    parser.add_argument("--before", type=Path, help="a checkout to run as the 'before' side")
    parser.add_argument("--ttft-ms", type=float, default=0.0, help="the echo engine's TTFT")
    parser.add_argument("--profile", type=int, metavar="C",
                        help="instead: one laneway trial at concurrency C under cProfile")
    parser.add_argument("--top", type=int, default=40, help="functions --profile shows")
    parser.add_argument("--output", type=Path, default=RESULTS / "whole_command.json")
    args = parser.parse_args(argv)
    concurrencies = [int(x) for x in args.concurrency.split(",")]
    trees = {"laneway": HERE.parent}
    if args.before is not None:
        if not (args.before / "src" / "laneway").is_dir():
            sys.exit(f"error: --before {args.before}: no src/laneway there")
        trees = {"before": args.before.resolve(), **trees}
    began = time.perf_counter()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="laneway-whole-") as tmpdir, \
            local_api_process("--ttft-ms", str(args.ttft_ms)) as base_url:
        if args.profile:
            profile(base_url, Path(tmpdir), jobs=args.jobs, concurrency=args.profile,
                    top=args.top)
            return 0
        trials = bench(base_url, Path(tmpdir), trees, jobs=args.jobs,
                       concurrencies=concurrencies, pairs=args.pairs)
    runtime = time.perf_counter() - began
    load_end = os.getloadavg()
    sides = ["plain", *trees]
    rows = summarize(trials, sides, concurrencies)
    heads = {side: _head(tree) for side, tree in trees.items()}
    show(rows, f"whole laneway run vs the guide's plain program — {args.jobs} jobs, echo "
               f"engine, {args.pairs} rounds, {', '.join(f'{s} {h}' for s, h in heads.items())}"
               f"; load {load_start[0]:.1f} at start, {load_end[0]:.1f} at end")
    print(f"benchmark runtime {runtime:.0f} s")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "benchmark": "whole_command",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_at_start": load_start, "load_avg_at_end": load_end},
        "setup": {"jobs": args.jobs, "max_tokens": MAX_TOKENS, "model": MODEL,
                  "engine": "echo", "ttft_ms": args.ttft_ms, "pairs": args.pairs,
                  "commits": heads, "laneway": " ".join(command("laneway", Path("IN"),
                                                                Path("OUT"), 0)[1:]),
                  "plain": "bench/_plain_whole.py: the guide's code, each result written "
                           "to a JSONL file as it completes",
                  "bytecode": "each laneway tree compiled first (compileall), as pip does"},
        "runtime_s": round(runtime, 1),
        "summary": rows,
        "trials": [asdict(t) for t in trials],
    }, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


def _head(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
