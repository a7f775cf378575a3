"""Benchmark: the seed guide's table, measured, and what ``--mode auto`` picks for a deadline.

Part 1 reproduces "10 / 100 documents: sequential streaming vs parallel (concurrency 5)
vs native batch" against the local API with a 3 s latency per request (echo engine,
``ttft_ms=3000``; a batch request takes the same 3 s, up to 100 at once), plus
``laneway`` auto with no deadline. Prices are claude-sonnet-4-6's, from the usage the
answers report: the local API is reached through ``ANTHROPIC_BASE_URL``, so laneway
treats it as the API and prices apply. The local API's batches end as soon as their
requests are done; the real API's take minutes to hours (the guide says 1-24 h).

Part 2 checks that auto is the cheapest mode that meets a deadline of 1 minute, 1 hour
and 1 day. Waiting real hours is not possible in a benchmark, so it runs in a world
where **all** time is divided by ``SCALE`` (60: a simulated minute is a real second):
request latency 3 s -> 50 ms, rate limits (the second tier, 1,000 RPM / 450k ITPM /
90k OTPM) x60, a batch's turnaround 30 min -> 30 s (its 24 h expiry -> 24 min), and the
planner's assumption that a batch takes about an hour -> 60 s. Deadlines are divided the
same way. Times in the table are converted back (x60). Costs do not scale.

    .venv/bin/python bench/seed_table.py [--quick]

``--quick`` skips the 300 s sequential run of 100 documents. Prints the tables and
writes ``bench/results/seed_table.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import local_api_process, print_table, save, write_jsonl
from laneway.governor.buckets import RateLimits
from laneway.jobs.formats import JobDefaults
from laneway.provider.client import Provider
from laneway.runners.native import NativeOptions
from laneway.runners.planner import PlannerOptions
from laneway.runs.library import Summary, run
from laneway.timeparse import human_s

MODEL = "claude-sonnet-4-6"
SCALE = 60.0
TIER_2 = RateLimits(rpm=1_000, itpm=450_000, otpm=90_000)
DEADLINES = {"1 minute": 60.0, "1 hour": 3600.0, "1 day": 86400.0}
BATCH_TURNAROUND_S = 1800.0  # simulated: what the scaled local API's batches take


def documents(n: int) -> list[dict[str, Any]]:
    """``n`` documents to summarize, ~150 words each (the echo engine repeats them)."""
    return [{"id": f"doc_{i}", "prompt": f"Summarize document {i}: " + " ".join(
        f"word{(i * 7 + k) % 97}" for k in range(150))} for i in range(n)]


async def one(inp: Path, provider: Provider, **options: Any) -> tuple[Summary, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        summary = await run(inp, None, provider=provider, db=Path(tmp) / "l.db",
                            defaults=JobDefaults(model=MODEL, max_tokens=1024), **options)
        return summary, time.monotonic() - started


async def part1(tmp: Path, quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with local_api_process("--ttft-ms", "3000", "--batch-concurrency", "100",
                           "--rpm", "1000", "--itpm", "450000", "--otpm", "90000") as url:
        provider = Provider.at(url)
        native = NativeOptions(poll_initial_s=0.5, poll_max_s=2.0)
        for n in (10, 100):
            inp = write_jsonl(tmp / f"docs{n}.jsonl", documents(n))
            cells = [
                ("sequential streaming", dict(mode="realtime", concurrency=1, stream=True)),
                ("parallel, concurrency 5", dict(mode="realtime", concurrency=5)),
                ("native batch", dict(mode="native", native=native)),
                ("laneway auto (no deadline)", dict(mode="auto", limits=TIER_2)),
            ]
            for name, options in cells:
                if quick and n == 100 and name.startswith("sequential"):
                    continue
                summary, wall = await one(inp, provider, **options)
                assert summary.succeeded == n, summary
                rows.append({"documents": n, "mode": name, "ran": summary.mode,
                             "wall_s": round(wall, 1), "cost_usd": round(summary.cost_usd, 5),
                             "plan": summary.plan})
                print(f"  {n} documents, {name}: {wall:.1f} s, ${summary.cost_usd:.4f}"
                      + (f" ({summary.plan})" if summary.plan else ""), flush=True)
        await provider.aclose()
    return rows


async def part2(tmp: Path) -> dict[str, Any]:
    inp = write_jsonl(tmp / "deadline.jsonl", documents(100))
    scaled = RateLimits(rpm=int(TIER_2.rpm * SCALE), itpm=int(TIER_2.itpm * SCALE),  # type: ignore[operator]
                        otpm=int(TIER_2.otpm * SCALE))  # type: ignore[operator]
    planner = PlannerOptions(first_token_s=3.0 / SCALE, output_tokens_per_s=1e9,
                             native_expected_s=3600.0 / SCALE)
    native = NativeOptions(poll_initial_s=1.0 / SCALE * 12, poll_max_s=60.0 / SCALE,
                           fallback_margin_s=60.0 / SCALE)
    modes: list[dict[str, Any]] = []
    autos: list[dict[str, Any]] = []
    with local_api_process(
            "--ttft-ms", str(3000 / SCALE), "--batch-concurrency", "100",
            "--batch-time-scale", str(1 / SCALE), "--batch-min-s",
            str(BATCH_TURNAROUND_S / SCALE), "--rpm", str(scaled.rpm), "--itpm",
            str(scaled.itpm), "--otpm", str(scaled.otpm)) as url:
        provider = Provider.at(url)
        common = dict(limits=scaled, planner=planner, native=native)
        for name, options in (("realtime, concurrency 5", dict(mode="realtime", concurrency=5)),
                              ("realtime, adaptive", dict(mode="realtime")),
                              ("native", dict(mode="native"))):
            summary, wall = await one(inp, provider, **common, **options)
            assert summary.succeeded == 100, summary
            modes.append({"mode": name, "simulated_s": wall * SCALE,
                          "cost_usd": summary.cost_usd})
            print(f"  {name}: {human_s(wall * SCALE)} simulated ({wall:.2f} s real), "
                  f"${summary.cost_usd:.4f}", flush=True)
        for label, deadline in DEADLINES.items():
            summary, wall = await one(inp, provider, **common, mode="auto",
                                      deadline_at=time.time() + deadline / SCALE)
            assert summary.succeeded == 100, summary
            meets = [m for m in modes if m["simulated_s"] <= deadline]
            cheapest = min(meets, key=lambda m: m["cost_usd"]) if meets else None
            autos.append({
                "deadline": label, "deadline_s": deadline,
                "auto_chose": (summary.plan or "").split(":")[0], "auto_ran": summary.mode,
                "plan": summary.plan, "simulated_s": wall * SCALE,
                "cost_usd": summary.cost_usd, "met": wall * SCALE <= deadline,
                "cheapest_that_meets": cheapest["mode"] if cheapest else None,
                "cheapest_cost_usd": cheapest["cost_usd"] if cheapest else None,
                "auto_is_cheapest": bool(cheapest) and
                summary.cost_usd <= cheapest["cost_usd"] * 1.001 and wall * SCALE <= deadline,
            })
            print(f"  auto, deadline {label}: {summary.plan}; {human_s(wall * SCALE)} "
                  f"simulated, ${summary.cost_usd:.4f}", flush=True)
        await provider.aclose()
    return {"modes": modes, "auto": autos}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="skip the 300 s sequential run of 100 documents")
    args = parser.parse_args()
    os.environ.pop("ANTHROPIC_API_KEY", None)
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        print("part 1: the seed table (3 s a request, real time)", flush=True)
        seed = await part1(tmp, args.quick)
        print(f"part 2: auto against deadlines (all time divided by {SCALE:g})", flush=True)
        deadlines = await part2(tmp)
    print_table("10 / 100 documents, 3 s a request, claude-sonnet-4-6 prices (local API)",
                ["docs", "mode", "wall", "cost"],
                [[r["documents"], r["mode"] + (f" -> {r['ran']}" if "auto" in r["mode"] else ""),
                  f"{r['wall_s']:.1f} s", f"${r['cost_usd']:.4f}"] for r in seed])
    print_table(f"100 documents: each mode once (simulated time = real time x {SCALE:g})",
                ["mode", "simulated time", "cost"],
                [[m["mode"], human_s(m["simulated_s"]), f"${m['cost_usd']:.4f}"]
                 for m in deadlines["modes"]])
    print_table("--mode auto with a deadline: is it the cheapest mode that meets it?",
                ["deadline", "auto chose -> ran", "time", "met", "cost", "cheapest that meets",
                 "same"],
                [[a["deadline"], f"{a['auto_chose']} -> {a['auto_ran']}", human_s(a["simulated_s"]),
                  "yes" if a["met"] else "NO", f"${a['cost_usd']:.4f}",
                  f"{a['cheapest_that_meets']} (${a['cheapest_cost_usd']:.4f})"
                  if a["cheapest_that_meets"] else "none",
                  "yes" if a["auto_is_cheapest"] else "NO"] for a in deadlines["auto"]])
    print(f"\nScaling: in part 2 every duration is divided by {SCALE:g} (latency 3 s -> "
          f"{3000 / SCALE:g} ms, rate limits x{SCALE:g}, batch turnaround "
          f"{human_s(BATCH_TURNAROUND_S)} -> {BATCH_TURNAROUND_S / SCALE:g} s, 24 h expiry "
          f"-> {24 * 60 / SCALE:g} min, the planner's 1 h batch assumption -> "
          f"{3600 / SCALE:g} s, and each deadline); times shown are multiplied back.")
    save("seed_table", {"model": MODEL, "scale": SCALE, "seed_table": seed, **deadlines})


if __name__ == "__main__":
    asyncio.run(main())
