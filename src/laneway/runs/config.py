"""Every option of a run (the CLI flags of ``laneway run``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from laneway.cost.prices import Price
from laneway.governor.buckets import RateLimits
from laneway.jobs.formats import JobDefaults
from laneway.runners.native import NativeOptions
from laneway.runners.planner import PlannerOptions

MODES = ("auto", "realtime", "native")


@dataclass(kw_only=True)
class RunConfig:
    """Every option of a run (the CLI flags of ``laneway run``)."""

    run_name: str | None = None
    mode: str = "auto"
    provider: str = "auto"
    defaults: JobDefaults = field(default_factory=JobDefaults)
    concurrency: int | None = None
    max_attempts: int = 6
    stream: bool = False
    timeout_s: float = 600.0
    #: Stop (jobs left pending) after this many seconds with no answer from the API.
    wait_for_api_s: float = 30.0
    budget_usd: float | None = None
    #: The price of models with no known one (``--price IN/OUT``): the run's own price
    #: table (``cost.budget.require_prices``), never stored process-wide; with a budget
    #: and no price, such a model stops the run before anything is sent.
    price: Price | None = None
    deadline_at: float | None = None
    skip_invalid: bool = False
    db: str | Path | None = None
    limits: RateLimits | None = None
    no_work: bool = False
    #: Who claims jobs; empty: "main" on SQLite (one process), a unique id on PostgreSQL,
    #: so two `laneway run` processes on one shared ledger never release each other's jobs.
    worker_id: str = ""
    #: Native batches: limits, polling, fallback (default: NativeOptions.from_env()).
    native: NativeOptions | None = None
    #: What ``--mode auto`` assumes (latency, batch turnaround, default limits).
    planner: PlannerOptions | None = None
