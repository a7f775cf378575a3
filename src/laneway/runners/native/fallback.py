"""The deadline fallback of the native runner: cancel the batches, keep what they
finished, and leave the rest ``pending`` for the realtime runner.

It fires when the time left before ``--deadline`` is no more than what realtime would
need for the jobs not yet finished, plus a margin. A batch is canceled *before* its
jobs are sent realtime, and its results are read once it has ended, so a job the batch
finished is not paid for twice. A batch that is still canceling after
``cancel_wait_s`` gets its jobs sent realtime anyway (the deadline comes first): any it
still completes is billed, but recorded once. A batch still ``submitting`` (unknown at
the provider) keeps its jobs: sending them could pay twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from laneway.runners.native.poll import Poller
from laneway.runners.native.state import NativeState
from laneway.store.batches import BatchRow
from laneway.store.statuses import BatchStatus


async def fallback_due(st: NativeState, *, deadline_at: float | None,
                       realtime_s: Callable[[int], float] | None) -> bool:
    """Whether the time left before ``deadline_at`` is no more than what realtime would
    need for the jobs not finished (``realtime_s(jobs)``), plus the margin."""
    if deadline_at is None or realtime_s is None:
        return False
    counts = await st.astore.counts(st.run_id)
    if counts.remaining == 0:
        return False
    need_s = realtime_s(counts.remaining) + st.options.fallback_margin_s
    return time.time() >= deadline_at - need_s


def _known(st: NativeState) -> list[BatchRow]:
    return [r for r in st.rows.values() if r.status != BatchStatus.SUBMITTING]


async def fall_back(st: NativeState, poller: Poller, *, deadline_at: float | None) -> None:
    """Cancel the batches, file what they finished, and leave the rest ``pending``:
    ``st.tally.fallback`` is set and ``left_for_realtime`` counts what is left."""
    opts = st.options
    left_s = max(0.0, (deadline_at or time.time()) - time.time())
    counts = await st.astore.counts(st.run_id)
    st.notice(f"deadline in {left_s:.0f} s: canceling {len(_known(st))} batch(es) "
              f"and sending the {counts.remaining} unfinished jobs realtime")
    await poller.cancel_batches(_known(st))
    until = time.monotonic() + opts.cancel_wait_s
    while _known(st) and time.monotonic() < until:
        await poller.poll(canceled=False, requeue_all=True)
        await poller.cancel_batches(_known(st))  # any adopted meanwhile
        if _known(st):
            await asyncio.sleep(min(opts.poll_initial_s, 1.0))
    for row in _known(st):
        waiting = await st.astore.batch_members(st.run_id, row.id)
        # Its reservation stays (the batch may still bill) until the batch ends.
        _, moved = await st.astore.file_results(st.run_id, row.id, [], list(waiting), {})
        st.notice(f"batch {row.id} still canceling after {opts.cancel_wait_s:g} s: its "
                  f"{moved} jobs go realtime too (any it still completes is billed, "
                  "but recorded once)")
        st.forget(row.id)
    st.tally.fallback = True
    st.tally.left_for_realtime = (await st.astore.counts(st.run_id)).remaining
