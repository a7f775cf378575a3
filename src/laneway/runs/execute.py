"""Carrying out a run's mode, and the status it ends in.

:func:`execute` runs ``realtime`` (a watched :class:`RealtimeRunner`), ``native``
(Message Batches), or ``hybrid``: native first, and when the deadline's fallback leaves
jobs ``pending``, the native runner *returns* and they are sent realtime here (the
native runner never calls back up). What status a run ends in is
:func:`laneway.runs.status.final_status`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from laneway.cost.prices import NO_PRICES, PriceTable
from laneway.errors import BatchesUnsupportedError
from laneway.governor.core import Governor
from laneway.provider.client import Provider
from laneway.runners.native import NativeTally, run_native
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.tally import Tally
from laneway.runs import status as run_status
from laneway.runs.config import RunConfig
from laneway.runs.options import background_governor, realtime_options
from laneway.runs.progress import Progress, progress_of
from laneway.runs.watch import RunWatch
from laneway.store import AsyncStore, Counts
from laneway.store.leases import new_worker_id


@dataclass(kw_only=True)
class Execution:
    """A run taken up by this process, ready to be carried out."""

    run_id: str
    astore: AsyncStore
    provider: Provider
    config: RunConfig
    #: The run's job count (for progress).
    total: int
    notice: Callable[[str], None] = lambda _msg: None
    on_progress: Callable[[Progress], None] | None = None
    stop_event: asyncio.Event | None = None
    #: The realtime part's governor: one shared with a person (``HybridAgent``); by
    #: default the run's own.
    governor: Governor | None = None
    #: Called (with why) when the upstream has no Message Batches: True to send the
    #: run's requests realtime instead (once); by default the run fails.
    on_no_batches: Callable[[str], Awaitable[bool]] | None = None
    #: The prices the run was given for models not in the table (``--price``): its own,
    #: whatever other runs of this process were given.
    prices: PriceTable = NO_PRICES


async def execute(ex: Execution, mode: str,
                  realtime_s: Callable[[int], float] | None = None) -> tuple[str, Tally]:
    """Run ``mode`` (``realtime``, ``native`` or ``hybrid``); returns the mode it came
    to be (``hybrid`` once the fallback sent jobs realtime, ``realtime`` when the
    upstream has no Message Batches and ``on_no_batches`` agreed) and the tally.

    ``realtime_s(jobs)``: how long realtime needs for that many jobs, which arms the
    deadline fallback of a native run (see :mod:`laneway.runners.native`).
    """
    if mode not in ("native", "hybrid"):
        return "realtime", await run_realtime(ex)
    try:
        tally = await run_batches(ex, realtime_s)
    except BatchesUnsupportedError as err:
        if ex.on_no_batches is None or not await ex.on_no_batches(str(err)):
            raise
        reason = f"realtime: {err}"
        ex.notice(f"run {ex.run_id}: {reason}")
        await run_status.mode_chosen(ex.astore, ex.run_id, "realtime")
        await ex.astore.add_event(ex.run_id, "plan", {"mode": "realtime", "reason": reason})
        return "realtime", await run_realtime(ex)
    if not tally.fallback or tally.stop_reason is not None:
        return "native", tally
    tally.add(await run_realtime(ex))  # the jobs the deadline's fallback left
    return "hybrid", tally


async def run_realtime(ex: Execution) -> Tally:
    """Send the run's pending jobs realtime, with progress and events (:class:`RunWatch`)."""
    before = await ex.astore.counts(ex.run_id)
    return await watch_realtime(ex, before, governor=ex.governor).run(ex.stop_event)


def watch_realtime(ex: Execution, before: Counts, *, governor: Governor | None = None,
                   event_every_s: float = 1.0) -> RunWatch:
    """A realtime runner for the run (:func:`realtime_runner`), watched."""
    return RunWatch(realtime_runner(ex, governor=governor), total=ex.total,
                    before=before, on_progress=ex.on_progress, event_every_s=event_every_s)


def realtime_runner(ex: Execution, *, governor: Governor | None = None,
                    claim_size: int | None = None,
                    lease_s: float | None = None) -> RealtimeRunner:
    """A realtime runner for the run (its ``--budget`` reserved in the ledger).

    ``governor``: one shared with a person (``HybridAgent``) or across runs (a worker);
    by default the run's own, which keeps nothing free for a person.
    """
    config, astore = ex.config, ex.astore
    # Claims on a shared ledger need an id no other process uses.
    worker_id = config.worker_id or (new_worker_id() if astore.store.is_postgres else "main")
    options = realtime_options(config, budget_usd=config.budget_usd, worker_id=worker_id,
                               claim_size=claim_size, lease_s=lease_s)
    options.prices = ex.prices
    return RealtimeRunner(
        run_id=ex.run_id, astore=astore, provider=ex.provider,
        governor=governor or background_governor(config.limits), options=options)


async def run_batches(ex: Execution,
                      realtime_s: Callable[[int], float] | None = None) -> NativeTally:
    """Send the run's pending jobs as native batches (and collect the batches it has)."""
    config, astore = ex.config, ex.astore
    before = await astore.counts(ex.run_id)
    return await run_native(
        run_id=ex.run_id, astore=astore, provider=ex.provider, options=config.native,
        max_attempts=config.max_attempts, budget_usd=config.budget_usd,
        deadline_at=config.deadline_at, realtime_s=realtime_s, on_notice=ex.notice,
        worker_id=config.worker_id or "main", stop_event=ex.stop_event,
        on_progress=_native_progress(ex, before), prices=ex.prices)


def _native_progress(ex: Execution, before: Counts) -> Callable[[NativeTally], None] | None:
    callback = ex.on_progress
    if callback is None:
        return None
    return lambda t: callback(progress_of(ex.run_id, ex.total, before, t, phase="native"))

