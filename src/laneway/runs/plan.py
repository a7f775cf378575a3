"""A run's plan, and what it cost against what realtime would have.

:func:`plan_run` measures what is left of a run (from the ledger) and asks the planner
(:mod:`laneway.runners.planner`); :func:`realtime_cost_usd` prices what succeeded at the
standard price, for the summary's "realtime would have cost".
"""

from __future__ import annotations

import time
from collections.abc import Callable

from laneway.cost.prices import NO_PRICES, PriceTable, Usage, cost_usd
from laneway.errors import UnknownModelError
from laneway.governor.buckets import RateLimits
from laneway.provider.client import Provider
from laneway.runners.planner import Plan, PlannerOptions, Workload, choose, realtime_s_for
from laneway.store import AsyncStore, Store
from laneway.store.statuses import JobStatus


def _workload(store: Store, run_id: str, expected_output_tokens: int) -> Workload:
    return Workload.of(store.unfinished_params(run_id),
                       expected_output_tokens=expected_output_tokens)


async def plan_run(
    astore: AsyncStore, run_id: str, provider: Provider, *,
    options: PlannerOptions | None = None, limits: RateLimits | None = None,
    concurrency: int | None = None, deadline_at: float | None = None,
    budget_usd: float | None = None, worker_id: str = "main",
) -> tuple[Plan, Callable[[int], float]]:
    """The plan for the unfinished part of ``run_id``, and ``jobs -> realtime seconds``."""
    options = options or PlannerOptions()
    counts = await astore.counts(run_id)
    expected = options.expected_output_tokens
    if counts[JobStatus.SUCCEEDED] >= 10:  # what this run's answers really are, once known
        expected = max(1, round(counts.output_tokens / counts[JobStatus.SUCCEEDED]))
    workload = await astore.call(_workload, astore.store, run_id, expected)
    batches = await astore.own_batches(run_id, worker=worker_id)
    learnt = await astore.batch_durations_s(provider=provider.kind)
    deadline_s = None if deadline_at is None else max(0.0, deadline_at - time.time())
    budget_left = None if budget_usd is None else budget_usd - counts.cost_usd
    plan = choose(workload, local=provider.costs_nothing, limits=limits,
                  concurrency=concurrency, deadline_s=deadline_s,
                  budget_left_usd=budget_left, batches_in_flight=len(batches),
                  options=options, learnt_s=learnt)
    return plan, realtime_s_for(workload, limits=limits, concurrency=concurrency,
                                options=options)


def realtime_cost_usd(store: Store, run_id: str, *, local: bool,
                      prices: PriceTable = NO_PRICES) -> float | None:
    """What the run's succeeded jobs cost, or would have cost, at the standard price
    (``prices``: those the run was given)."""
    if local:
        return 0.0
    total = 0.0
    for model, tin, tout, write, read in store.usage_by_model(run_id):
        usage = Usage(input_tokens=tin, output_tokens=tout,
                      cache_creation_input_tokens=write, cache_read_input_tokens=read)
        try:
            total += cost_usd(model, usage, prices=prices)
        except UnknownModelError:
            continue
    return total
