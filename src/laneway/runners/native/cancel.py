"""``laneway cancel RUN``: stop a run for good, without losing what was already paid for.

1. The run is marked ``canceled`` (a running ``laneway run`` sees it on its next poll
   and sends nothing more), and its jobs not yet sent become ``canceled``.
2. Every batch of the run still running at the provider is canceled.
3. The canceled batches are polled until they end (up to ``wait_s``) and their results
   read: requests the provider finished before the cancel took effect are billed, so
   they are recorded with their cost like any other; the rest become ``canceled``.

A batch that has not ended within ``wait_s`` keeps its row (``canceling``); running
``laneway cancel`` or ``laneway run`` again reads its results later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from laneway.errors import ConfigError
from laneway.provider.client import Provider
from laneway.runners.native.options import NativeOptions
from laneway.runners.native.recover import Recovery, recover_submitting
from laneway.runners.native.runner import NativeRunner
from laneway.store import AsyncStore
from laneway.store.statuses import ACTIVE_BATCHES, BatchStatus, RunStatus


@dataclass
class CancelReport:
    run_id: str
    #: Jobs never sent, now ``canceled``.
    unsent_canceled: int = 0
    #: Batches the provider was asked to cancel.
    batches_canceled: int = 0
    #: Results the canceled batches still delivered (billed), and their cost.
    succeeded: int = 0
    cost_usd: float = 0.0
    #: Batches not ended within the wait (their results are read later).
    still_running: int = 0


async def cancel_run(
    *, run_id: str, astore: AsyncStore, provider: Provider, wait_s: float = 60.0,
    on_notice: Callable[[str], None] | None = None, worker_id: str = "main",
    options: NativeOptions | None = None,
) -> CancelReport:
    notice = on_notice or (lambda _m: None)
    run = await astore.get_run(run_id)
    if run is None:
        raise ConfigError(f"no run named {run_id!r} in {astore.store.settings}")
    report = CancelReport(run_id)
    await astore.set_run_status(run_id, RunStatus.CANCELED)
    report.unsent_canceled = await astore.cancel_unsent(run_id)
    options = options or NativeOptions.from_env()
    runner = NativeRunner(run_id=run_id, astore=astore, provider=provider, options=options,
                          worker_id=worker_id, on_notice=notice,
                          until=time.time() + max(0.0, wait_s))
    rows = [r for r in await astore.run_batches(run_id)
            if r.status in ACTIVE_BATCHES]
    for row in rows:
        if row.status == BatchStatus.SUBMITTING:  # settle it first: it may be running unseen
            outcome, info = await recover_submitting(
                runner.state.batches, astore, row, skew_s=options.recover_skew_s, notice=notice)
            if outcome is not Recovery.ADOPTED or info is None:
                continue
            row = replace(row, provider_batch_id=info.id, status=BatchStatus.SUBMITTED)
        report.batches_canceled += await runner.cancel_batches([row])
    if report.batches_canceled:
        notice(f"run {run_id}: canceled {report.batches_canceled} batch(es); reading what "
               f"they finished before the cancel (up to {wait_s:g} s)")
    tally = await runner.run()
    report.succeeded, report.cost_usd = tally.succeeded, tally.cost_usd
    report.unsent_canceled += await astore.cancel_unsent(run_id)
    left = [r for r in await astore.run_batches(run_id)
            if r.status in ACTIVE_BATCHES]
    report.still_running = len(left)
    return report


__all__ = ["CancelReport", "cancel_run"]
