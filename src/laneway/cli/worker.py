"""``laneway worker``: one of several processes sharing the runs of a PostgreSQL ledger."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from laneway.cli import bounds
from laneway.cli.app import app, console_err
from laneway.cli.signals import stop_on_signals
from laneway.governor.buckets import RateLimits
from laneway.heap import freeze_startup_objects
from laneway.runs.names import check_run_name

if TYPE_CHECKING:
    from laneway.runners.tally import Tally
    from laneway.runs.worker import WorkerConfig, WorkerReport

EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130


@app.command("worker", short_help="Work on the runs of a shared ledger.")
def worker_command(
    db: str = typer.Option(..., help="The shared ledger: postgresql://USER@HOST/DB."),
    run_name: str | None = typer.Option(None, "--run", help="Work on this run only (default: every run not finished, oldest first)."),
    follow: bool = typer.Option(False, "--follow", help="When every run is done, wait for new ones instead of exiting."),
    lease: float | None = typer.Option(None, "--lease", min=0.5, help="Seconds a claim lasts unless renewed: how soon another host's workers take a dead worker's jobs (default: $LANEWAY_LEASE_S, 300 s; on this host a dead worker's are taken at once)."),
    provider: str = typer.Option("auto", help="auto, anthropic (needs ANTHROPIC_API_KEY or ANTHROPIC_BASE_URL) or local."),
    concurrency: int | None = typer.Option(None, min=1, help="Fixed requests in flight in this worker (default: adaptive)."),
    max_attempts: int = typer.Option(6, min=1, help="Attempts per job for retryable errors (429s do not count)."),
    stream: bool = typer.Option(False, "--stream", help="Stream each request."),
    timeout_s: float = typer.Option(600.0, "--timeout", callback=bounds.above_zero, help="Seconds before one request times out."),
    rpm: int | None = typer.Option(None, min=1, help="Requests-per-minute limit for this worker, if known (else learnt)."),
    itpm: int | None = typer.Option(None, min=1, help="Input-tokens-per-minute limit for this worker, if known."),
    otpm: int | None = typer.Option(None, min=1, help="Output-tokens-per-minute limit for this worker, if known."),
    worker_id: str | None = typer.Option(None, "--id", help="This worker's name in the ledger (default: host-pid-random)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only errors and the summary."),
) -> None:
    """Work on the runs of a shared ledger until they are done, beside other workers.

    Enqueue with `laneway run IN --db postgresql://... --no-work`, then start any number
    of workers on any hosts. Jobs are claimed under a lease: if a worker dies, the
    others take its jobs when the lease runs out. Each result is recorded once, and a
    429 seen by one worker pauses them all. Ctrl-C stops cleanly.
    """
    from laneway.runs.worker import WorkerConfig  # the SDK and the store
    from laneway.store.holders import mint
    from laneway.store.leases import lease_s, new_worker_id

    if run_name is not None:
        check_run_name(run_name)
    limits = RateLimits(rpm=rpm, itpm=itpm, otpm=otpm) if (rpm or itpm or otpm) else None
    config = WorkerConfig(
        db=db, run_id=run_name, follow=follow, provider=provider, concurrency=concurrency,
        max_attempts=max_attempts, timeout_s=timeout_s, stream=stream, limits=limits,
        lease_s=lease if lease is not None else lease_s(), worker_id=mint(worker_id) if worker_id else new_worker_id())
    freeze_startup_objects()
    try:
        report = asyncio.run(_work(config, quiet=quiet))
    except KeyboardInterrupt:
        console_err.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    console_err.print(report_table(report))
    if report.stop_reason is not None:
        console_err.print(f"[red]laneway: error:[/red] {escape(report.stop_detail or '')}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(2 if report.stop_reason == "auth" else EXIT_INCOMPLETE)
    if report.stopped:
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(not r.finished for r in report.runs.values()):
        raise typer.Exit(EXIT_INCOMPLETE)


async def _work(config: WorkerConfig, *, quiet: bool) -> WorkerReport:
    from laneway.runs.worker import work

    stop = stop_on_signals("stopping: no new requests; releasing held jobs "
                           "(Ctrl-C again to abandon requests in flight)")
    last = 0.0

    def notice(msg: str) -> None:
        if not quiet:
            console_err.print(f"laneway worker {config.worker_id}: {msg}", highlight=False)

    def on_result(run_id: str, tally: Tally) -> None:
        nonlocal last
        now = time.monotonic()
        if quiet or now - last < 5.0:
            return
        last = now
        elapsed = max(1e-9, now - tally.started_at)
        notice(f"run {run_id}: {tally.done} done here ({tally.done / elapsed:.1f}/s), "
               f"{tally.in_flight} in flight")

    notice(f"joining the runs of {config.db.split('@')[-1]}")
    try:
        return await work(config, on_notice=notice, on_result=on_result, stop_event=stop)
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def report_table(r: WorkerReport) -> Table:
    t = Table(title=f"worker {r.worker_id}", title_justify="left")
    for name in ("run", "succeeded", "errored", "requests", "retried", "rate-limited",
                 "state"):
        t.add_column(name)
    for w in r.runs.values():
        state = w.note or ("finished" if w.finished else "not finished")
        t.add_row(w.run_id, str(w.succeeded), str(w.errored), str(w.requests),
                  str(w.retries), str(w.rate_limited), state)
    t.caption = (f"{r.wall_s:.1f} s; pauses shared: {r.pauses_published} published, "
                 f"{r.pauses_applied} applied from other workers")
    return t
