"""Benchmark: opening a finished 100,000-job run's page, and paging through its jobs.

Processes on this machine: the local API (echo engine), ``laneway serve`` on the
ledger, and headless Chromium (Debian's, through Playwright). The run is written
straight into the ledger (100,000 jobs ingested as ``laneway run`` does, then finished
over 30 minutes of made-up time, 1% errored, with a runner's sample a second; on
PostgreSQL then vacuumed, as autovacuum would), so the figure is the page's and the
ledger's, not the time to send 100,000 requests.

For SQLite and PostgreSQL (a private server from Debian's binaries, or
``LANEWAY_TEST_PG``), side by side:

- open: from ``page.goto('/runs/big')`` to both charts drawn and the first job page
  rendered (``#detail[data-chart=drawn]`` and ``#jobs-table[data-state=ready]``), a new
  page each time in one browser context: the first (a cold cache, and the server's
  first reads of the run), then the median of ``--repeat`` (5);
- next page: a click on "Next" to the next 50 jobs rendered, median of ``--repeat``;
- both also on the page's own clock (``performance.mark`` when the charts and the jobs
  are drawn, from the navigation's start or the click): without Playwright's polling
  and its round trips, which a loaded machine stretches; and the open until the run's
  counts are shown too (the stats above the charts, drawn as they come);
- the JSON endpoints behind the page, timed alone (median): the run, its timeline, the
  first job page, a page 90,000 jobs in, the errored jobs, a search by id.

Also the index that makes the page fast (``ix_jobs_run_outcomes``, migration 008) is
costed where it costs: claiming and finishing 20,000 jobs in groups of 100 on SQLite,
with and without it, alternating, median of 3 (``finish_*``). And saves screenshots
under ``bench/results/`` (the finished run's page, its per-job view, and ``/traffic``
after a restart of the server).

    .venv/bin/python bench/run_page.py [--jobs 100000] [--repeat 5] [--only sqlite]

Prints a table and writes ``bench/results/run_page.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anthropic
import httpx
from sqlalchemy import case, literal, update

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server

import pgserver
from _common import (
    RESULTS,
    local_api_process,
    print_table,
    save,
    serve_process,
    stop_process,
)
from laneway.jobs.formats import Job
from laneway.store import Finished, RunStatus, open_store
from laneway.store import schema as S
from laneway.store.runviews import RunSample
from laneway.store.statuses import JobStatus

RUN = "big"
SPAN_S = 1800.0
CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
_RESULT = json.dumps({"type": "succeeded", "message": {
    "id": "msg_x", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
    "content": [{"type": "text", "text": "A short summary of the article, two sentences "
                                        "long, as the prompt asked."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 120, "output_tokens": 24}}}, separators=(",", ":"))


def fill(dsn: str, jobs: int) -> float:
    """A finished run of ``jobs`` jobs in the ledger at ``dsn``; returns seconds taken."""
    started = time.monotonic()
    store = open_store(dsn)
    try:
        store.create_run(run_id=RUN, fingerprint="bench", options={
            "model": "claude-haiku-4-5", "max_tokens": 64, "system": None},
            mode="realtime", provider="anthropic", input_path=None, input_sha256=None)
        chunk = 5000
        for start in range(0, jobs, chunk):
            part = [Job(f"article-{i:06d}", {"model": "claude-haiku-4-5", "max_tokens": 64,
                                             "messages": [{"role": "user", "content":
                                                           f"Summarise article {i}."}]},
                        i + 1) for i in range(start, min(jobs, start + chunk))]
            store.add_jobs(RUN, part, first_seq=start, last_line=part[-1].line)
        t0 = time.time() - SPAN_S - 600
        j = S.jobs.c
        bad = (j.seq % 100) == 7
        with store.engine.begin() as conn:
            conn.execute(update(S.jobs).where(j.run_id == RUN).values(
                status=case((bad, literal("errored")), else_=literal("succeeded")),
                attempts=1, mode="realtime",
                finished_at=t0 + j.seq * (SPAN_S / jobs), updated_at=t0 + SPAN_S,
                input_tokens=120, output_tokens=case((bad, 0), else_=24),
                cost_usd=case((bad, 0.0), else_=0.000216), priced=True,
                error_type=case((bad, literal("overloaded_error")), else_=None),
                error_message=case((bad, literal("Overloaded")), else_=None),
                result=case((bad, literal('{"type":"errored","error":{"type":'
                                          '"overloaded_error","message":"Overloaded"}}')),
                            else_=literal(_RESULT))))
        for s in range(int(SPAN_S)):
            use = 0.6 + 0.35 * ((s % 120) / 120)
            store.add_run_sample(RunSample(RUN, t0 + s, done=int(s * jobs / SPAN_S),
                                           in_flight=50, limit_use=round(use, 4),
                                           limit_use_by_bucket={"m:output": use}))
        store.update_run(RUN, ingest_done=True, total=jobs, status=RunStatus.DONE)
        if store.is_postgres:
            # What autovacuum does to a table whose rows were all rewritten (as finishing
            # every job does): without it each read skips 100,000 dead row versions.
            with store.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE jobs")
                conn.exec_driver_sql("VACUUM ANALYZE run_samples")
    finally:
        store.close()
    return time.monotonic() - started


def finish_s(folder: Path, *, index: bool, jobs: int = 20_000) -> float:
    """Seconds to claim and finish ``jobs`` jobs, 100 at a time, on a new SQLite ledger."""
    store = open_store(f"sqlite:///{folder / f'finish-{index}-{time.monotonic_ns()}.db'}")
    try:
        if not index:
            with store.engine.begin() as conn:
                conn.exec_driver_sql("DROP INDEX ix_jobs_run_outcomes")
        store.create_run(run_id="f", fingerprint="f", options={}, mode="realtime",
                         provider="local", input_path=None, input_sha256=None)
        params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user",
                                                               "content": "x" * 200}]}
        for start in range(0, jobs, 5000):
            store.add_jobs("f", [Job(f"j{i}", params, i + 1) for i in range(start, start + 5000)],
                           first_seq=start, last_line=start + 5000)
        answer = {"type": "succeeded", "message": {"content": [{"type": "text",
                                                                 "text": "y" * 300}]}}
        started = time.perf_counter()
        for start in range(0, jobs, 100):
            store.claim("f", worker="w", limit=100, lease_s=60)
            store.finish([Finished(run_id="f", seq=i, status=JobStatus.SUCCEEDED,
                                   result=answer, attempts=1, input_tokens=10,
                                   output_tokens=5, cost_usd=0.001)
                          for i in range(start, start + 100)])
        return time.perf_counter() - started
    finally:
        store.close()


def finish_cost(folder: Path) -> dict[str, float]:
    without, with_ = [], []
    for _ in range(3):
        without.append(finish_s(folder, index=False))
        with_.append(finish_s(folder, index=True))
    a, b = statistics.median(without), statistics.median(with_)
    return {"finish_20000_without_index_s": round(a, 2),
            "finish_20000_with_index_s": round(b, 2), "finish_ratio": round(b / a, 2)}


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median milliseconds of ``fn`` over ``repeat`` calls, after one warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


def measure_page(browser: Any, url: str, repeat: int, shots: str | None) -> dict[str, float]:
    # One browser context, as a person's browser: the first open fetches the page's
    # scripts and styles, the next ones find them in its cache (revalidated).
    context = browser.new_context(viewport={"width": 1200, "height": 900})

    def open_page() -> tuple[Any, float, float, float]:
        page = context.new_page()
        t = time.perf_counter()
        page.goto(f"{url}/runs/{RUN}", wait_until="commit")
        page.locator("#detail[data-chart='drawn']").wait_for(timeout=30_000)
        page.locator("#jobs-table[data-state='ready']").wait_for(timeout=30_000)
        wall = (time.perf_counter() - t) * 1000
        # The page's own clock: from the navigation's start to the later of its marks.
        page.locator("#detail[data-state='ended']").wait_for(timeout=30_000)  # counts too
        marks = page.evaluate("() => Object.fromEntries(['laneway:chart', 'laneway:jobs', "
                              "'laneway:run'].map((n) => [n, performance.getEntriesByName(n)"
                              "[0].startTime]))")
        inside = max(marks["laneway:chart"], marks["laneway:jobs"])
        return page, wall, float(inside), max(inside, float(marks["laneway:run"]))

    opened = [open_page() for _ in range(repeat + 1)]  # the first: a cold cache
    page = opened[-1][0]
    seen = [0]
    inside: list[float] = []

    def next_page() -> None:
        seen[0] += 1
        clicked = float(page.evaluate("() => performance.now()"))
        page.click("#jobs-next")
        first = seen[0] * 50 + 1
        page.locator(f"#jobs-range:text-is('#{first} – #{first + 49}')").wait_for(
            timeout=30_000)
        marks = page.evaluate("() => performance.getEntriesByName('laneway:jobs')"
                              ".map((m) => m.startTime)")
        inside.append(float(marks[-1]) - clicked)

    next_ms = timed(next_page, repeat)
    figures = {
        "first_open_ms": round(opened[0][1], 1),
        "open_ms": round(statistics.median(o[1] for o in opened[1:]), 1),
        "open_in_page_ms": round(statistics.median(o[2] for o in opened[1:]), 1),
        "open_with_counts_in_page_ms": round(statistics.median(o[3] for o in opened[1:]), 1),
        "next_page_ms": next_ms,
        "next_page_in_page_ms": round(statistics.median(inside[1:]), 1)}
    if shots:
        page.locator("#detail[data-state='ended']").wait_for(timeout=30_000)
        page.screenshot(path=str(RESULTS / f"run_page_{shots}.png"), full_page=True)
        page.select_option("#jobs-status", "errored")
        page.locator("#jobs-body tr[data-status='errored'] >> nth=0").wait_for()
        page.click("#jobs-body tr[data-status='errored'] button >> nth=0")
        page.locator("#job:not([hidden])").wait_for()
        page.locator("#job").screenshot(path=str(RESULTS / f"run_job_{shots}.png"))
    context.close()
    return figures


def measure_api(url: str, repeat: int) -> dict[str, float]:
    base = f"{url}/v1/runs/{RUN}"
    with httpx.Client(timeout=30) as http:
        def get(path: str) -> Callable[[], None]:
            return lambda: http.get(base + path).raise_for_status()

        return {"run_ms": timed(get(""), repeat),
                "timeline_ms": timed(get("/timeline"), repeat),
                "jobs_first_ms": timed(get("/jobs?limit=50"), repeat),
                "jobs_90000_in_ms": timed(get("/jobs?limit=50&after=89999"), repeat),
                "jobs_errored_ms": timed(get("/jobs?limit=50&status=errored"), repeat),
                "jobs_search_ms": timed(get("/jobs?limit=50&search=article-09999"), repeat)}


def traffic_after_restart(browser: Any, local_url: str, dsn: str) -> None:
    """Some gateway traffic, a restart of the server, then a screenshot of /traffic."""
    proc, url = serve_process(local_url, dsn, timeout_s=60)
    try:
        client = anthropic.Anthropic(base_url=url, api_key="k", max_retries=0)
        for i in range(20):
            client.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[
                {"role": "user", "content": f"request {i}"}])
        with client.messages.stream(model="claude-sonnet-4-6", max_tokens=16, messages=[
                {"role": "user", "content": "a person waiting"}]) as stream:
            stream.get_final_message()
    finally:
        stop_process(proc, timeout_s=15)
    proc, url = serve_process(local_url, dsn, timeout_s=60)
    try:
        for name, viewport in (("desktop", {"width": 1200, "height": 1100}),
                               ("phone", {"width": 390, "height": 844})):
            page = browser.new_page(viewport=viewport)
            page.goto(url + "/traffic")
            page.locator("#history[data-state='ready']").wait_for(timeout=30_000)
            page.screenshot(path=str(RESULTS / f"traffic_after_restart_{name}.png"),
                            full_page=True)
            page.close()
    finally:
        stop_process(proc, timeout_s=15)


def one_backend(kind: str, dsn: str, args: argparse.Namespace, browser: Any,
                local_url: str) -> dict[str, Any]:
    fill_s = fill(dsn, args.jobs)
    proc, url = serve_process(local_url, dsn, timeout_s=60)
    try:
        figures = {"backend": kind, "jobs": args.jobs, "fill_s": round(fill_s, 1),
                   **measure_page(browser, url, args.repeat, kind),
                   **measure_api(url, args.repeat)}
    finally:
        stop_process(proc, timeout_s=15)
    if kind == "sqlite":
        traffic_after_restart(browser, local_url, dsn)
        figures.update(finish_cost(Path(dsn.removeprefix("sqlite:///")).parent))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("needs Debian's chromium")
    from playwright.sync_api import sync_playwright

    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, local_api_process() as local_url, \
            sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        if args.only in (None, "sqlite"):
            dsn = f"sqlite:///{Path(tmp) / 'ledger.db'}"
            rows.append(one_backend("sqlite", dsn, args, browser, local_url))
        if args.only in (None, "postgresql"):
            server = None
            pg = os.environ.get(pgserver.ENV_DSN)
            if not pg:
                server = pgserver.TempPostgres.start(fast=False)
                pg = server.dsn
            name, schema_dsn = pgserver.new_schema(pg)
            try:
                rows.append(one_backend("postgresql", schema_dsn, args, browser, local_url))
            finally:
                pgserver.drop_schema(pg, name)
                if server is not None:
                    server.stop()
        browser.close()
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "backend"))
    print_table(f"A finished {args.jobs:,}-job run's page (ms, median of {args.repeat}; "
                f"goal: open and next page < 300 ms; load {os.getloadavg()[0]:.1f})",
                ["figure", *[r["backend"] for r in rows]],
                [[k, *[r.get(k, "") for r in rows]] for k in keys])
    save("run_page", {"repeat": args.repeat, "goal_ms": 300, "results": rows})


if __name__ == "__main__":
    main()
