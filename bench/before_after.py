"""Benchmark of benchmarks: every figure of bench/ on two checkouts, side by side.

For each of ``overhead``, ``scale``, ``crash``, ``ratelimit``, ``interactive``,
``workers`` and ``seed_table``, the bench runs as a subprocess of this venv's Python
with ``PYTHONPATH`` set to the *before* tree's ``src`` and then the *after* tree's
``src`` (and the order swapped from one bench to the next, so the machine's load weighs
on both alike). Every process a bench starts (``python -m laneway``, the ``laneway``
script, ``spawn`` children) inherits ``PYTHONPATH``, so each side runs its own laneway.
The bench script is the *after* tree's, except where it imports names a redesign
moved (issue 11: ``ratelimit``, ``interactive``, ``workers``, ``scale``'s ledger poll;
issue 27's packages: ``overhead``, ``seed_table``): there each tree runs its own. Each
run's JSON (``bench/results/NAME.json`` of the tree whose script ran, or its
``--output``) is kept as ``bench/results/before_after/NAME.SIDE.N.json``.

The table gives every figure before and after, after/before, which way is better, and a
verdict: ``same`` within ``--noise`` (10%), else ``better`` or ``WORSE``. Timings on a
shared machine are noisy: run a WORSE bench again (``--only NAME --repeat 3``; the
median of the runs is compared) before believing it.

    .venv/bin/python bench/before_after.py --before ../before --quick [--only crash,scale]

``--quick`` uses small sizes (each run about a minute or two on 2 cores); without it each
bench runs at its own default size (hours in all). Writes ``bench/results/before_after.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import print_table

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
KEPT = RESULTS / "before_after"

#: (figure, value, "higher" or "lower" is better)
Figure = tuple[str, float, str]


@dataclass(frozen=True)
class Bench:
    name: str
    quick: tuple[str, ...]
    #: True: the bench writes where ``--output PATH`` says; False: ``results/NAME.json``
    #: next to the script.
    takes_output: bool
    #: True: each tree runs its own copy of the script (it imports moved names).
    own_script: bool
    figures: Callable[[dict[str, Any]], Iterator[Figure]]
    timeout_s: float = 3600.0


# -- the figures of each bench -----------------------------------------------------------
def overhead_figures(d: dict[str, Any]) -> Iterator[Figure]:
    for r in d["summary"]:
        c = r["concurrency"]
        yield f"c={c} laneway jobs/s", r["laneway_jobs_per_s"], "higher"
        yield f"c={c} laneway/plain", r["ratio"], "higher"
        yield f"c={c} laneway CPU ms/job", r["laneway_cpu_ms_per_job"], "lower"


def scale_figures(d: dict[str, Any]) -> Iterator[Figure]:
    p1 = d["phase1"]
    yield "ingest lines/s (whole command)", p1["ingest_lines_per_s"], "higher"
    yield "ingest lines/s (ingest proper)", p1["ingest_only_lines_per_s"], "higher"
    yield "peak RSS during ingest MB", p1["peak_rss_ingest_mb"], "lower"
    yield "run jobs/s after ingest", p1["jobs_per_s"], "higher"
    yield "SIGINT -> exit s", p1["stop_s"], "lower"
    yield "peak RSS ingest + run MB", p1["peak_rss_mb"], "lower"
    yield "run --help s", d["startup"]["wall_s"], "lower"
    yield "run --help MB", d["startup"]["peak_rss_mb"], "lower"
    for r in d["reruns"]:
        yield f"re-run {r['label']} s", r["wall_s"], "lower"
        yield f"re-run {r['label']} MB", r["peak_rss_mb"], "lower"


def crash_figures(d: dict[str, Any]) -> Iterator[Figure]:
    s = d["summary"]
    yield "results lost", s["results_lost"], "lower"
    yield "results duplicated", s["results_duplicated"], "lower"
    yield "requests sent twice per kill", s["sent_twice_per_kill"], "lower"
    yield "final exit code", s["final_exit_code"], "lower"


def ratelimit_figures(d: dict[str, Any]) -> Iterator[Figure]:
    for r in d["results"]:
        if r["name"].startswith("laneway"):
            yield f"laneway goodput ({r['binding']})", r["goodput"][r["binding"]], "higher"
            yield "laneway 429 share", r["share_429"], "lower"
            yield "laneway failed", r["usage"]["failed"], "lower"
            yield "laneway done", r["usage"]["requests"], "higher"


def interactive_figures(d: dict[str, Any]) -> Iterator[Figure]:
    for phase in ("idle", "loaded"):
        for q in ("p50", "p99"):
            yield f"TTFT {phase} {q} ms", d[f"{phase}_ms"][q], "lower"
    yield "background jobs done meanwhile", d["background_done"], "higher"


def workers_figures(d: dict[str, Any]) -> Iterator[Figure]:
    for s in d["series"]:
        conc = s["concurrency_per_worker"]
        for r in s["rounds"]:
            label = f"conc {conc}, {r['workers']} worker(s){' 1 killed' if r['killed'] else ''}"
            yield f"{label} jobs/s", r["jobs_per_s"], "higher"
            yield f"{label} lost+dup", r["lost"] + r["duplicated"], "lower"
            if r["killed"]:
                yield f"{label} re-sent", r["requests"] - r["jobs"], "lower"


def seed_table_figures(d: dict[str, Any]) -> Iterator[Figure]:
    for r in d["seed_table"]:
        yield f"{r['documents']} docs, {r['mode']} s", r["wall_s"], "lower"
        yield f"{r['documents']} docs, {r['mode']} $", r["cost_usd"], "lower"
    for m in d["modes"]:
        yield f"100 docs sim., {m['mode']} s", m["simulated_s"], "lower"
    for a in d["auto"]:
        yield f"auto, deadline {a['deadline']}: met", float(a["met"]), "higher"
        yield f"auto, deadline {a['deadline']}: cheapest", float(a["auto_is_cheapest"]), "higher"
        yield f"auto, deadline {a['deadline']} $", a["cost_usd"], "lower"


BENCHES = {b.name: b for b in (
    Bench("overhead", ("--jobs", "2000", "--concurrency", "5,50,200", "--repeats", "2"),
          True, True, overhead_figures),
    Bench("scale", ("--lines", "100000", "--run-jobs", "10000", "--plain-jobs", "0"),
          True, True, scale_figures),
    Bench("crash", ("--jobs", "5000", "--kills", "5"), True, False, crash_figures),
    Bench("ratelimit", ("--jobs", "1000", "--max-seconds", "100"), False, True,
          ratelimit_figures),
    Bench("interactive", ("--seconds", "25", "--background-jobs", "2000"), False, True,
          interactive_figures),
    Bench("workers", ("--jobs", "3000", "--workers", "1,2", "--kill-workers", "2",
                      "--capped-jobs", "800"), True, True, workers_figures),
    Bench("seed_table", ("--quick",), False, True, seed_table_figures),
)}


# -- running -----------------------------------------------------------------------------
def check_tree(tree: Path) -> None:
    """Fail unless ``import laneway`` with PYTHONPATH=TREE/src finds TREE's laneway."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    found = subprocess.run([sys.executable, "-c", "import laneway; print(laneway.__file__)"],
                           env=env, capture_output=True, text=True, check=False).stdout.strip()
    if not found.startswith(str(tree / "src")):
        sys.exit(f"error: PYTHONPATH={tree / 'src'} imports laneway from {found or 'nowhere'}")


def run_one(bench: Bench, side: str, tree: Path, after: Path, n: int, *, quick: bool,
            log: Path) -> dict[str, Any]:
    """One run of ``bench`` against ``tree``'s src; returns its JSON (kept in KEPT)."""
    bench_dir = (tree if bench.own_script else after) / "bench"
    kept = KEPT / f"{bench.name}.{side}.{n}.json"
    kept.unlink(missing_ok=True)
    written = kept if bench.takes_output else bench_dir / "results" / f"{bench.name}.json"
    cmd = [sys.executable, str(bench_dir / f"{bench.name}.py"), *(bench.quick if quick else ())]
    if bench.takes_output:
        cmd += ["--output", str(kept)]
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    started = time.perf_counter()
    with log.open("a") as out:
        out.write(f"\n=== {bench.name} {side} #{n}: {' '.join(cmd)}\n")
        out.flush()
        mtime = written.stat().st_mtime if written.exists() else 0.0
        proc = subprocess.run(cmd, env=env, cwd=tree, stdout=out, stderr=subprocess.STDOUT,
                              timeout=bench.timeout_s, check=False)
    wall = time.perf_counter() - started
    if not written.exists() or written.stat().st_mtime <= mtime:
        raise RuntimeError(f"{bench.name} ({side}) exited {proc.returncode} without "
                           f"writing {written}; see {log}")
    if written != kept:
        shutil.copyfile(written, kept)
    print(f"  {bench.name} {side} #{n}: {wall:.0f} s, exit {proc.returncode}, "
          f"load {os.getloadavg()[0]:.2f}", flush=True)
    data: dict[str, Any] = json.loads(kept.read_text())
    return data


def verdict(before: float, after: float, better: str, noise: float) -> tuple[str, str]:
    """(after/before, better|same|WORSE) for one figure."""
    if before == after:
        return ("1.00" if before else "-"), "same"
    ratio = f"{after / before:.2f}" if before else "-"
    gain = (after - before) if better == "higher" else (before - after)
    if before and abs(after - before) / abs(before) <= noise:
        return ratio, "same"
    return ratio, "better" if gain > 0 else "WORSE"


def compare(bench: Bench, befores: list[dict[str, Any]], afters: list[dict[str, Any]],
            noise: float) -> list[dict[str, Any]]:
    def medians(runs: list[dict[str, Any]]) -> dict[str, tuple[float, str]]:
        seen: dict[str, list[float]] = {}
        better: dict[str, str] = {}
        for data in runs:
            for name, value, way in bench.figures(data):
                seen.setdefault(name, []).append(float(value))
                better[name] = way
        return {k: (statistics.median(v), better[k]) for k, v in seen.items()}

    b, a = medians(befores), medians(afters)
    rows = []
    for name in dict.fromkeys([*b, *a]):
        if name not in b or name not in a:
            rows.append({"bench": bench.name, "figure": name, "before": b.get(name, (None,))[0],
                         "after": a.get(name, (None,))[0], "ratio": "-", "better": "",
                         "verdict": "only one side"})
            continue
        (bv, way), av = b[name], a[name][0]
        ratio, word = verdict(bv, av, way, noise)
        rows.append({"bench": bench.name, "figure": name, "before": bv, "after": av,
                     "ratio": ratio, "better": way, "verdict": word})
    return rows


def fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if x == int(x) and abs(x) >= 1:
        return f"{int(x):,}"
    return f"{x:,.1f}" if abs(x) >= 10 else f"{x:.4g}"


def git_head(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, required=True, help="checkout before")
    parser.add_argument("--after", type=Path, default=HERE.parent,
                        help="checkout after (default: this one)")
    parser.add_argument("--only", default=",".join(BENCHES),
                        help=f"benches, comma-separated ({','.join(BENCHES)})")
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side (median)")
    parser.add_argument("--noise", type=float, default=0.10,
                        help="relative change still called 'same' (0.10)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        sys.exit(f"error: unknown bench {', '.join(unknown)}; known: {', '.join(BENCHES)}")
    trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    for tree in trees.values():
        check_tree(tree)
    KEPT.mkdir(parents=True, exist_ok=True)
    log = KEPT / "log.txt"
    load_start = os.getloadavg()
    print(f"before {trees['before']} ({git_head(trees['before'])}), after {trees['after']} "
          f"({git_head(trees['after'])}); load {load_start[0]:.2f}; log {log}", flush=True)
    rows: list[dict[str, Any]] = []
    for i, name in enumerate(names):
        bench = BENCHES[name]
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for n in range(args.repeat):
            order = ("before", "after") if (i + n) % 2 == 0 else ("after", "before")
            for side in order:
                try:
                    runs[side].append(run_one(bench, side, trees[side], trees["after"], n,
                                              quick=args.quick, log=log))
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    print(f"  {name} {side} #{n} failed: {exc}", flush=True)
        rows += compare(bench, runs["before"], runs["after"], args.noise)
    load_end = os.getloadavg()
    print_table(f"before {git_head(trees['before'])} vs after {git_head(trees['after'])}"
                f"{' (--quick)' if args.quick else ''}, median of {args.repeat}; load "
                f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end",
                ["bench", "figure", "before", "after", "after/before", "better", "verdict"],
                [[r["bench"], r["figure"], fmt(r["before"]), fmt(r["after"]), r["ratio"],
                  r["better"], r["verdict"]] for r in rows])
    out = RESULTS / "before_after.json"
    out.write_text(json.dumps({
        "benchmark": "before_after",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": load_start,
                    "load_avg_at_end": load_end},
        "before": {"tree": str(trees["before"]), "commit": git_head(trees["before"])},
        "after": {"tree": str(trees["after"]), "commit": git_head(trees["after"])},
        "quick": args.quick, "repeat": args.repeat, "noise": args.noise, "benches": names,
        "rows": rows,
    }, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
