"""A canceled run's batches at the provider: canceled, and what they finished read.

The run itself (its status, its jobs not sent) is canceled by
:func:`laneway.runs.cancel.cancel`, the one home of a cancel, which calls this part:

1. Every batch of the run still running at the provider is canceled (a batch left
   ``submitting`` by a dead process is settled first: it may be running unseen).
2. The canceled batches are polled until they end (up to ``wait_s``) and their results
   read: requests the provider finished before the cancel took effect are billed, so
   they are recorded with their cost like any other; the rest become ``canceled``.

A batch that has not ended within ``wait_s`` keeps its row (``canceling``); running
``laneway cancel`` or ``laneway run`` again reads its results later.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from laneway.provider.client import Provider
from laneway.runners.native.options import NativeOptions, NativeTally
from laneway.runners.native.recover import Recovery, recover_submitting
from laneway.runners.native.runner import NativeRunner
from laneway.store import AsyncStore
from laneway.store.statuses import ACTIVE_BATCHES, BatchStatus


async def cancel_batches(
    *, run_id: str, astore: AsyncStore, provider: Provider, wait_s: float = 60.0,
    on_notice: Callable[[str], None] | None = None, worker_id: str = "main",
    options: NativeOptions | None = None,
) -> tuple[int, int, NativeTally]:
    """Cancel the batches of ``run_id`` (already recorded ``canceled``) and read them.

    Returns the batches the provider was asked to cancel, those not ended within
    ``wait_s``, and the tally of what was read (``succeeded`` results are billed).
    """
    notice = on_notice or (lambda _m: None)
    options = options or NativeOptions.from_env()
    runner = NativeRunner(run_id=run_id, astore=astore, provider=provider, options=options,
                          worker_id=worker_id, on_notice=notice,
                          until=time.time() + max(0.0, wait_s))
    canceled = 0
    for row in [r for r in await astore.run_batches(run_id) if r.status in ACTIVE_BATCHES]:
        if row.status == BatchStatus.SUBMITTING:  # settle it first: it may be running unseen
            outcome, info = await recover_submitting(
                runner.state.batches, astore, row, skew_s=options.recover_skew_s, notice=notice)
            if outcome is not Recovery.ADOPTED or info is None:
                continue
            row = replace(row, provider_batch_id=info.id, status=BatchStatus.SUBMITTED)
        canceled += await runner.cancel_batches([row])
    if canceled:
        notice(f"run {run_id}: canceled {canceled} batch(es); reading what "
               f"they finished before the cancel (up to {wait_s:g} s)")
    tally = await runner.run()
    left = [r for r in await astore.run_batches(run_id) if r.status in ACTIVE_BATCHES]
    return canceled, len(left), tally


__all__ = ["cancel_batches"]
