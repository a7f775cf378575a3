"""``laneway runs``, ``laneway status [RUN]`` and ``laneway results RUN``: read the ledger."""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from laneway.cli.app import app, console, console_err
from laneway.cost.answered import model_lines
from laneway.errors import ConfigError
from laneway.jobs.formats import dump_results, result_text, write_results
from laneway.jobs.output import check_output, replacing
from laneway.timeparse import human_s

if TYPE_CHECKING:
    from laneway.store import Store

DB_HELP = "Ledger: a path, sqlite:///PATH or postgresql://... [default: .laneway/laneway.db]"


def _open(db: str | None) -> Store:
    from laneway.store import StoreSettings, open_store  # SQLAlchemy: only when used

    return open_store(StoreSettings.from_dsn(db))


def _latest(store: Store) -> str:
    runs = store.list_runs(limit=1)
    if not runs:
        raise ConfigError(f"no runs in {store.settings} yet: start one with `laneway run IN.jsonl`")
    return runs[0].id


def _need(store: Store, run_id: str) -> None:
    if store.get_run(run_id) is None:
        raise ConfigError(f"no run named {run_id!r} in {store.settings} (see `laneway runs`)")


@app.command("runs")
def runs_command(
    db: str | None = typer.Option(None, help=DB_HELP),
    limit: int = typer.Option(20, min=1, help="How many of the latest runs to list."),
) -> None:
    """List runs in the ledger, newest first."""
    from laneway.store.statuses import JobStatus

    store = _open(db)
    try:
        runs = store.list_runs(limit=limit)
        table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0))
        # The name every other command takes: whole, never cut short; the short columns
        # keep their width and the name gets the rest (folded when it needs more).
        table.add_column("run", overflow="fold")
        for name in ("status", "mode", "jobs", "done", "failed", "cost", "started"):
            table.add_column(name, no_wrap=True)
        now = time.time()
        for r in runs:
            c = store.counts(r.id)
            table.add_row(r.id, r.status, r.mode, str(c.total), str(c[JobStatus.SUCCEEDED]),
                          str(c[JobStatus.ERRORED]), f"${c.cost_usd:.4f}",
                          f"{human_s(now - r.created_at)} ago")
        console.print(table)
    finally:
        store.close()


@app.command("status", short_help="Show one run: counts, tokens, cost.")
def status_command(
    run_id: str | None = typer.Argument(None, metavar="[RUN]", help="Run (default: the latest)."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Show one run: counts by status, tokens, cost and where it stands."""
    from laneway.store.statuses import FINAL_JOBS, JobStatus, RunStatus

    store = _open(db)
    try:
        run_id = run_id or _latest(store)
        _need(store, run_id)
        r = store.get_run(run_id)
        assert r is not None
        c = store.counts(run_id)
        table = Table(title=f"run {run_id}", show_header=False, title_justify="left")
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")  # paths and names whole, never cut
        failed = r.status == RunStatus.INGEST_FAILED
        table.add_row("status", r.status + (" (nothing of it is sent)" if failed else
                                            "" if r.ingest_done else " (ingest not finished)"))
        if r.note:
            table.add_row("why", r.note)
        table.add_row("mode", r.mode)
        table.add_row("input", str(r.input_path))
        table.add_row("jobs", str(c.total))
        for status in (*FINAL_JOBS, JobStatus.PENDING, JobStatus.CLAIMED, JobStatus.SUBMITTED):
            if c[status]:
                table.add_row(f"  {status}", str(c[status]))
        for line in model_lines([asdict(m) for m in store.answered_models(run_id)]):
            table.add_row("model", line)
        table.add_row("tokens", f"{c.input_tokens:,} in, {c.output_tokens:,} out")
        cost = f"${c.cost_usd:.4f}"
        unpriced = store.unpriced_models(run_id)
        if unpriced:
            cost += f" (not counted: unknown price for {', '.join(unpriced)})"
        table.add_row("cost", cost)
        if r.output_path:
            table.add_row("results file", r.output_path)
        console.print(table)
    finally:
        store.close()


@app.command("results")
def results_command(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run (see `laneway runs`)."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (Message Batches results form) or text."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Print or write a run's results in input order."""
    if fmt not in ("jsonl", "text"):
        raise ConfigError(f"--format {fmt!r}: choose jsonl or text")
    from laneway.store.diskfull import disk_full_errors

    store = _open(db)
    try:
        _need(store, run_id)
        if output is not None:
            run = store.get_run(run_id)
            check_output(output, input_path=run.input_path if run else None)
        rows = store.iter_results(run_id)
        if fmt == "jsonl":
            if output is not None:
                with disk_full_errors(f"cannot write {output}"):
                    n = write_results(output, rows)
                console_err.print(f"wrote {n} results to {output}")
            else:
                dump_results(sys.stdout, rows)
            return
        with disk_full_errors(f"cannot write {output}"), (
                contextlib.nullcontext(sys.stdout) if output is None else replacing(output)
        ) as out:
            for custom_id, result in rows:
                out.write(f"== {custom_id}\n{result_text(result)}\n\n")
    finally:
        store.close()
