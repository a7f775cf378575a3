"""The live progress bar of a run and the summary printed at its end."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from laneway.cost.answered import model_lines
from laneway.timeparse import human_s

if TYPE_CHECKING:
    from laneway.runs.library import Summary
    from laneway.runs.progress import Progress as RunProgress


class ProgressBar:
    """done/failed/total, requests/s, tokens, cost so far and ETA, on stderr."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]}/s"),
            TextColumn("{task.fields[tokens]} tok"),
            TextColumn("${task.fields[cost]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console, transient=False, disable=not enabled,
            refresh_per_second=5,
        )
        self.task: TaskID | None = None

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def update(self, p: RunProgress) -> None:
        fields: dict[str, Any] = {
            "failed": p.errored, "rate": f"{p.rate_per_s:.1f}",
            "tokens": f"{p.input_tokens + p.output_tokens:,}", "cost": f"{p.cost_usd:.4f}",
            "eta": human_s(p.eta_s) if p.done < p.total else "0s",
        }
        if self.task is None:
            self.task = self.progress.add_task(p.run_id, total=p.total, completed=p.done,
                                               **fields)
        else:
            self.progress.update(self.task, total=p.total, completed=p.done, **fields)


def summary_table(s: Summary) -> Table:
    t = Table(title=f"run {s.run_id}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("mode", s.plan if s.plan and s.plan.startswith(s.mode) else
              s.mode + (f" — {s.plan}" if s.plan else ""))
    t.add_row("jobs", f"{s.total}: {s.succeeded} succeeded, {s.errored} errored"
              + (f", {s.canceled} canceled" if s.canceled else "")
              + (f", {s.expired} expired" if s.expired else "")
              + (f", {s.pending} not finished" if s.pending else ""))
    for line in model_lines(s.models):
        t.add_row("model", line)
    t.add_row("tokens", f"{s.input_tokens:,} in, {s.output_tokens:,} out")
    cost = f"${s.cost_usd:.4f}"
    if s.unpriced_models:
        cost += f" (not counted: unknown price for {', '.join(s.unpriced_models)})"
    if s.realtime_cost_usd is not None and s.mode != "realtime":
        cost += f" (realtime would have cost ${s.realtime_cost_usd:.4f})"
    t.add_row("cost", cost)
    t.add_row("wall time", human_s(s.wall_s))
    if s.requests:
        t.add_row("requests", f"{s.requests} sent, {s.retries} retried, "
                  f"{s.rate_limited} rate-limited")
    if s.utilization:
        t.add_row("rate-limit use", ", ".join(f"{k} {v:.0%}" for k, v in
                                              sorted(s.utilization.items())))
    if s.output_path:
        t.add_row("results", s.output_path)
    return t
