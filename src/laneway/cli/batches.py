"""``laneway cancel RUN`` and ``laneway estimate IN.jsonl``: native batches around a run."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from laneway.cli import bounds
from laneway.cli.app import app, console, console_err
from laneway.governor.buckets import RateLimits
from laneway.jobs.formats import DEFAULT_MODEL, BadLine, JobDefaults, read_jobs
from laneway.timeparse import human_s, parse_deadline

if TYPE_CHECKING:
    from laneway.runners.planner import Estimate, Plan, PlannerOptions, Workload
    from laneway.runs.cancel import CancelReport


@app.command("cancel", short_help="Cancel a run (its batches, every job left).")
def cancel_command(
    run_id: str = typer.Argument(..., metavar="RUN", help="The run to cancel (see `laneway runs`)."),
    db: str | None = typer.Option(None, help="Ledger: a path, sqlite:///PATH or postgresql://... [default: .laneway/laneway.db]"),
    provider: str = typer.Option("auto", help="auto, anthropic or local: where the run's batches are."),
    wait: float = typer.Option(60.0, callback=bounds.at_least_zero, help="Seconds to wait for canceled batches to end and read what they finished."),
) -> None:
    """Cancel a run: its batches at the provider, and every job not finished.

    Requests a batch finished before the cancel took effect are billed: their results
    are still read and recorded (with their cost).
    """
    report = asyncio.run(_cancel(run_id, db=db, provider=provider, wait_s=wait))
    line = (f"run {report.run_id} canceled: {report.unsent_canceled} jobs not sent were "
            f"canceled, {report.batches_canceled} batch(es) canceled")
    if report.billed:
        line += (f"; {report.billed} results they finished were recorded "
                 f"(${report.billed_usd:.4f}, billed)")
    console_err.print(line)
    if report.batches_still_running:
        console_err.print(f"{report.batches_still_running} batch(es) still canceling: run "
                          f"`laneway cancel {run_id}` again later to record their results")


async def _cancel(run_id: str, *, db: str | None, provider: str, wait_s: float
                  ) -> CancelReport:
    # The SDK and the store load only for the command that uses them.
    from laneway.provider.backend import open_provider
    from laneway.runs.cancel import cancel
    from laneway.store import AsyncStore, StoreSettings, open_store

    store = open_store(StoreSettings.from_dsn(db))
    astore = AsyncStore(store)
    backend = None
    try:
        backend = await asyncio.to_thread(open_provider, provider, quiet=True)
        return await cancel(run_id, astore=astore, provider=backend, wait_s=wait_s,
                            on_notice=lambda m: console_err.print(f"laneway: {m}",
                                                                  highlight=False))
    finally:
        if backend is not None:
            await backend.aclose()
        astore.close()
        store.close()


@app.command("estimate", short_help="Estimate a run's tokens, time and cost.")
def estimate_command(
    input_path: Path = typer.Argument(..., metavar="IN.jsonl", help="JSONL input, as for `laneway run`."),
    model: str = typer.Option(DEFAULT_MODEL, help="Model for lines that name none."),
    max_tokens: int = typer.Option(1024, min=1, help="max_tokens for lines that give none."),
    system: str | None = typer.Option(None, help="System prompt for lines that give none."),
    expected_output: int = typer.Option(400, min=1, help="Output tokens expected per answer (capped by max_tokens)."),
    provider: str = typer.Option("auto", help="auto, anthropic or local: where a run would go."),
    concurrency: int | None = typer.Option(None, min=1, help="Requests in flight realtime would use."),
    rpm: int | None = typer.Option(None, min=1, help="Requests-per-minute limit (default: the first tier's)."),
    itpm: int | None = typer.Option(None, min=1, help="Input-tokens-per-minute limit."),
    otpm: int | None = typer.Option(None, min=1, help="Output-tokens-per-minute limit."),
    deadline: str | None = typer.Option(None, help="Finish by: 30m, 2h, 1d or 2026-12-01T09:00."),
    budget: float | None = typer.Option(None, callback=bounds.above_zero, help="Budget in USD."),
    price: str | None = typer.Option(None, metavar="IN/OUT", help="USD per million input/output tokens for models with no known price."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Estimate a run before sending anything: tokens, and each mode's time and cost."""
    from laneway.provider.backend import choose_provider
    from laneway.runners.planner import (
        PlannerOptions,
        Workload,
        choose,
        native_estimate,
        realtime_estimate,
    )

    defaults = JobDefaults(model=model, max_tokens=max_tokens, system=system)
    workload = Workload()
    for job in read_jobs(input_path, defaults=defaults):
        if not isinstance(job, BadLine):
            workload.add(job.params, expected_output_tokens=expected_output)
    options = PlannerOptions(expected_output_tokens=expected_output)
    if price is not None:
        from laneway.cost.budget import parse_price, require_prices
        from laneway.cost.prices import known

        given = require_prices(sorted(m for m in workload.by_model if not known(m)),
                               budget_usd=budget, price=parse_price(price))
        options = replace(options, prices=given)
    local = choose_provider(provider) == "local"
    limits = RateLimits(rpm=rpm, itpm=itpm, otpm=otpm) if (rpm or itpm or otpm) else None
    # Prices are the API's even when a run would go to the free local API: that is the
    # figure worth knowing before running against the API.
    rt = realtime_estimate(workload, limits=limits, concurrency=concurrency, local=False,
                           options=options)
    nat = native_estimate(workload, local=False, options=options)
    deadline_s = parse_deadline(deadline) - time.time() if deadline else None
    plan = choose(workload, local=local, limits=limits, concurrency=concurrency,
                  deadline_s=deadline_s, budget_left_usd=budget, options=options)
    if as_json:
        console.print_json(json.dumps({
            "jobs": workload.jobs, "input_tokens": workload.input_tokens,
            "expected_output_tokens": workload.expected_output_tokens,
            "max_output_tokens": workload.max_output_tokens,
            "realtime": asdict(rt), "native": asdict(nat),
            "auto": {"mode": plan.mode, "reason": plan.reason}}))
        return
    _print_estimate(workload, rt, nat, plan, limits=limits, options=options,
                    expected_output=expected_output, local=local)


def _print_estimate(
    workload: Workload, rt: Estimate, nat: Estimate, plan: Plan, *,
    limits: RateLimits | None, options: PlannerOptions, expected_output: int, local: bool,
) -> None:
    """The table ``laneway estimate`` prints (without ``--json``)."""
    from laneway.runners.planner import limits_text

    models = ", ".join(f"{m} ({load.jobs})" for m, load in workload.by_model.items())
    console.print(f"{workload.jobs:,} jobs: {models or 'none'}")
    console.print(f"tokens: ~{workload.input_tokens:,} input; ~{workload.expected_output_tokens:,} "
                  f"output expected ({expected_output} per answer, or max_tokens if lower), "
                  f"{workload.max_output_tokens:,} at most (max_tokens)")
    table = Table(show_header=True, header_style="bold")
    for col in ("mode", "time", "cost (expected)", "cost (worst case)"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    table.add_row("realtime", f"~{human_s(rt.time_s)}", f"${rt.cost_usd:.4f}",
                  f"${rt.worst_usd:.4f}")
    table.add_row("native", f"~{human_s(nat.time_s)} (at most {human_s(options.native_max_s)})",
                  f"${nat.cost_usd:.4f}", f"${nat.worst_usd:.4f}")
    console.print(table)
    lim = limits or options.default_limits
    console.print(f"realtime assumes {limits_text(lim)}"
                  + ("" if limits else " (the API's first tier: pass --rpm/--itpm/--otpm)")
                  + f", {options.first_token_s:g} s to the first token and "
                    f"{options.output_tokens_per_s:g} tokens/s")
    if rt.unpriced:
        console.print(f"[yellow]no price known for {', '.join(rt.unpriced)}: not counted"
                      "[/yellow]")
    if local:
        console.print("no ANTHROPIC_API_KEY: a run would use the local API, which is free")
    console.print(f"--mode auto would choose {plan.reason}")
