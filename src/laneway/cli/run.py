"""``laneway run``: the main job — every request of a JSONL file, durably, with progress."""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from laneway.cli import bounds
from laneway.cli.app import app, console_err
from laneway.cli.progress import ProgressBar, summary_table
from laneway.cli.signals import stop_on_signals
from laneway.governor.buckets import RateLimits
from laneway.heap import freeze_startup_objects, no_collection
from laneway.jobs.formats import DEFAULT_MODEL, JobDefaults
from laneway.runs.names import check_run_name
from laneway.timeparse import parse_deadline

if TYPE_CHECKING:
    from laneway.runs.config import RunConfig
    from laneway.runs.library import Summary

EXIT_ERROR = 2
EXIT_INCOMPLETE = 3
EXIT_INTERRUPTED = 130


@app.command("run", short_help="Run every request of a JSONL file, durably.")
def run_command(
    input_path: Path = typer.Argument(..., help="JSONL input: {custom_id, params} or {id, prompt} per line.",
                                      metavar="IN.jsonl"),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write results JSONL here (input order)."),
    run_name: str | None = typer.Option(None, "--run", help="Name the run (default: from the input and options)."),
    mode: str = typer.Option("auto", help="auto, realtime (parallel requests) or native (Message Batches, half price)."),
    provider: str = typer.Option("auto", help="auto, anthropic (needs ANTHROPIC_API_KEY) or local (embedded model)."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model for lines that name none."),
    max_tokens: int = typer.Option(1024, min=1, help="max_tokens for lines that give none."),
    system: str | None = typer.Option(None, help="System prompt for lines that give none."),
    concurrency: int | None = typer.Option(None, min=1, help="Fixed requests in flight (default: adaptive)."),
    max_attempts: int = typer.Option(6, min=1, help="Attempts per job for retryable errors (429s do not count)."),
    stream: bool = typer.Option(False, "--stream", help="Stream each request (detects stalls; needed for very long outputs)."),
    timeout_s: float = typer.Option(600.0, "--timeout", callback=bounds.above_zero, help="Seconds before one request times out (non-streamed ones get less, from the run's observed speed)."),
    wait_for_api_s: float = typer.Option(30.0, "--wait-for-api", callback=bounds.above_zero, help="Stop after this many seconds with no answer from the API (jobs stay pending).", metavar="SECONDS"),
    budget: float | None = typer.Option(None, callback=bounds.above_zero, help="Stop sending new work before spending this many USD."),
    price: str | None = typer.Option(None, metavar="IN/OUT", help="USD per million input/output tokens for models with no known price (needed with --budget)."),
    deadline: str | None = typer.Option(None, help="Finish by: 30m, 2h, 1d or 2026-12-01T09:00."),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="Record bad lines as errored results instead of stopping."),
    db: str | None = typer.Option(None, help="Ledger: a path, sqlite:///PATH or postgresql://... [default: .laneway/laneway.db]"),
    rpm: int | None = typer.Option(None, min=1, help="Requests-per-minute limit, if known (else learnt)."),
    itpm: int | None = typer.Option(None, min=1, help="Input-tokens-per-minute limit, if known."),
    otpm: int | None = typer.Option(None, min=1, help="Output-tokens-per-minute limit, if known."),
    no_work: bool = typer.Option(False, "--no-work", help="Only enqueue the jobs (for `laneway worker`)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Run every request in IN.jsonl and write the results, resuming if run before.

    Re-running the same command continues the same run: finished jobs are not sent
    again. Ctrl-C stops cleanly (press it twice to abandon requests in flight).
    """
    with no_collection():  # what the imports make lives as long as the process
        from laneway.cost.budget import parse_price
        from laneway.runs.config import RunConfig
        # The SDK and the store (not for --help), before the freeze below.
        importlib.import_module("laneway.runs.library")

    if run_name is not None:
        check_run_name(run_name)  # before the ledger or the provider is opened
    limits = RateLimits(rpm=rpm, itpm=itpm, otpm=otpm) if (rpm or itpm or otpm) else None
    config = RunConfig(
        run_name=run_name, mode=mode, provider=provider,
        defaults=JobDefaults(model=model, max_tokens=max_tokens, system=system),
        concurrency=concurrency, max_attempts=max_attempts, stream=stream,
        timeout_s=timeout_s, wait_for_api_s=wait_for_api_s, budget_usd=budget,
        price=parse_price(price) if price is not None else None,
        deadline_at=parse_deadline(deadline) if deadline else None,
        skip_invalid=skip_invalid, db=db, limits=limits, no_work=no_work,
    )
    freeze_startup_objects()
    try:
        summary = asyncio.run(_run(input_path, output, config, quiet=quiet))
    except KeyboardInterrupt:
        console_err.print(f"interrupted. Resume with: [bold]{_resume_command()}[/bold]")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    _report(summary, budget=budget, no_work=no_work)


def _report(summary: Summary, *, budget: float | None, no_work: bool) -> None:
    """Print how the run ended; exit non-zero when it did not finish."""
    if summary.stop_reason == "auth":  # a refused key: one line, as for any mistake
        console_err.print(f"[red]laneway: error:[/red] {escape(summary.stop_detail or '')}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_ERROR)
    console_err.print(summary_table(summary))
    if summary.stop_reason == "api_unreachable":
        console_err.print(f"[red]laneway: error:[/red] {escape(summary.stop_detail or '')}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_INCOMPLETE)
    if summary.stop_reason == "budget":
        console_err.print(f"[yellow]stopped: the budget of ${budget} would be exceeded; "
                          f"{summary.pending} jobs not sent[/yellow]")
    if summary.pending and not no_work:
        console_err.print(f"{summary.pending} jobs not finished. Resume with: "
                          f"[bold]{_resume_command()}[/bold]")
        raise typer.Exit(EXIT_INTERRUPTED if summary.stop_reason == "interrupted"
                         else EXIT_INCOMPLETE)


def _resume_command() -> str:
    from laneway.store.redact import shell_command  # the store: not for --help

    return "laneway " + shell_command(sys.argv[1:])  # a --db password shows as ***


async def _run(input_path: Path, output: Path | None, config: RunConfig, *,
               quiet: bool) -> Summary:
    from laneway.runs.library import run

    stop = stop_on_signals("stopping: no new requests; waiting for those in flight "
                           "(Ctrl-C again to abandon them)")
    bar = ProgressBar(console_err, enabled=not quiet and console_err.is_terminal)
    with bar:
        try:
            return await run(input_path, output, config=config, on_progress=bar.update,
                             on_notice=lambda m: console_err.print(f"laneway: {m}"),
                             stop_event=stop)
        except asyncio.CancelledError:
            raise KeyboardInterrupt from None
