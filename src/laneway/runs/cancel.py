"""A run stopped for good: the one home of a cancel, whoever asks for it.

``laneway cancel RUN``, ``laneway serve``'s ``POST /v1/runs/{id}/cancel``, its gateway's
Message Batches cancel (and expiry), ``HybridAgent.cancel`` and a cancel followed from
another process (:mod:`.follow`) all come here, and all get a :class:`CancelReport`:

1. The process's own work on the run stops (``stop_live``: requests in flight are
   abandoned, the jobs it held are given back).
2. The run is marked ``canceled`` (a ``laneway run`` elsewhere sees it on its next poll
   and sends nothing more), and its jobs not sent become ``canceled``.
3. With a ``provider``, the run's native batches still running at the provider are
   canceled (whoever submitted them) and their results read for up to ``wait_s``:
   requests a batch finished before the cancel took effect are billed, so they are
   recorded with their cost like any other (:mod:`laneway.runners.native.cancel`).

A batch not ended within ``wait_s`` stays ``canceling`` in the ledger; cancelling
again, or ``laneway run`` on the run, reads it later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from laneway.errors import ConfigError
from laneway.provider.client import Provider
from laneway.runners.native.cancel import cancel_batches
from laneway.runners.native.options import NativeOptions
from laneway.runs import status as run_status
from laneway.store import AsyncStore
from laneway.store.statuses import ACTIVE_BATCHES, JobStatus


@dataclass
class CancelReport:
    """What a cancel did (the one report of every way to cancel a run)."""

    run_id: str
    #: Jobs this cancel recorded as ``canceled`` (never sent, or left by a canceled batch).
    canceled: int = 0
    #: Of them, jobs never sent.
    unsent_canceled: int = 0
    #: Batches the provider was asked to cancel, and those not ended within the wait.
    batches_canceled: int = 0
    batches_still_running: int = 0
    #: Results the canceled batches still delivered (billed), and their cost.
    billed: int = 0
    billed_usd: float = 0.0


#: Stops this process's own work on a run (a :class:`~laneway.agent.HybridAgent`'s).
StopLive = Callable[[str], Awaitable[object]]


async def cancel(run_id: str, *, astore: AsyncStore, provider: Provider | None = None,
                 stop_live: StopLive | None = None, wait_s: float = 60.0,
                 on_notice: Callable[[str], None] | None = None, worker_id: str = "main",
                 options: NativeOptions | None = None) -> CancelReport:
    """Cancel ``run_id``: see the module docstring. Without a ``provider`` its batches
    at the provider are left as they are."""
    if await astore.get_run(run_id) is None:
        raise ConfigError(f"no run named {run_id!r} in {astore.store.settings}")
    before = (await astore.counts(run_id))[JobStatus.CANCELED]
    if stop_live is not None:
        await stop_live(run_id)
    report = CancelReport(run_id)
    await run_status.canceled(astore, run_id)
    report.unsent_canceled = await astore.cancel_unsent(run_id)
    batches = await astore.run_batches(run_id)
    if provider is not None and any(b.status in ACTIVE_BATCHES for b in batches):
        report.batches_canceled, report.batches_still_running, tally = await cancel_batches(
            run_id=run_id, astore=astore, provider=provider, wait_s=wait_s,
            on_notice=on_notice, worker_id=worker_id, options=options)
        report.billed, report.billed_usd = tally.succeeded, tally.cost_usd
        report.unsent_canceled += await astore.cancel_unsent(run_id)
    report.canceled = (await astore.counts(run_id))[JobStatus.CANCELED] - before
    return report


__all__ = ["CancelReport", "StopLive", "cancel"]
