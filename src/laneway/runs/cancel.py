"""A run stopped for good, as ``laneway cancel RUN`` does: by ``laneway serve``'s
``POST /v1/runs/{id}/cancel`` and its gateway's Message Batches cancel.

1. The process's own work on the run stops (requests in flight are abandoned) and its
   jobs not sent become ``canceled``.
2. The run's native batches still running at the provider are canceled (whoever
   submitted them: this server, or a ``laneway run`` elsewhere), and their results
   are read for up to ``wait_s``: requests a batch finished before the cancel took
   effect are billed, so they are recorded with their cost like any other.

A batch not ended within ``wait_s`` stays ``canceling`` in the ledger; cancelling
again (here or with ``laneway cancel``), or ``laneway run`` on the run, reads it later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Protocol

from laneway.provider.client import Provider
from laneway.runners.native.cancel import cancel_run as cancel_batches
from laneway.store import AsyncStore
from laneway.store.statuses import ACTIVE_BATCHES, JobStatus

log = logging.getLogger("laneway.server")


@dataclass(frozen=True)
class Canceled:
    #: Jobs this cancel recorded as ``canceled``.
    canceled: int = 0
    #: Batches the provider was asked to cancel, and those not ended within the wait.
    batches_canceled: int = 0
    batches_still_running: int = 0
    #: Results the canceled batches still delivered (billed), and their cost.
    billed: int = 0
    billed_usd: float = 0.0


class LiveRuns(Protocol):
    """The runs this process carries out (a :class:`~laneway.agent.HybridAgent`)."""

    async def cancel(self, run_id: str) -> int:
        """Stop this process's work on the run and record its jobs not sent ``canceled``."""
        ...


async def cancel(run_id: str, *, astore: AsyncStore, provider: Provider, live: LiveRuns,
                 wait_s: float) -> Canceled:
    """Cancel ``run_id``: this process's work on it (``live``), then its batches at the
    provider."""
    before = (await astore.counts(run_id))[JobStatus.CANCELED]
    await live.cancel(run_id)
    batches = await astore.run_batches(run_id)
    outcome = Canceled()
    if any(b.status in ACTIVE_BATCHES for b in batches):
        report = await cancel_batches(run_id=run_id, astore=astore, provider=provider,
                                      wait_s=wait_s, on_notice=log.info)
        outcome = Canceled(batches_canceled=report.batches_canceled,
                           batches_still_running=report.still_running,
                           billed=report.succeeded, billed_usd=report.cost_usd)
    after = (await astore.counts(run_id))[JobStatus.CANCELED]
    return replace(outcome, canceled=after - before)


__all__ = ["Canceled", "LiveRuns", "cancel"]
