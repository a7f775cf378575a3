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
from typing import TYPE_CHECKING

from laneway.store.batches import BatchRow, BatchStatus

if TYPE_CHECKING:
    from laneway.runners.native import NativeRunner


async def fallback_due(runner: NativeRunner) -> bool:
    if runner.deadline_at is None or runner.realtime_s is None:
        return False
    counts = await runner.astore.call(runner.store.counts, runner.run_id)
    if counts.remaining == 0:
        return False
    need_s = runner.realtime_s(counts.remaining) + runner.options.fallback_margin_s
    return time.time() >= runner.deadline_at - need_s


def _known(runner: NativeRunner) -> list[BatchRow]:
    return [r for r in runner.rows.values() if r.status != BatchStatus.SUBMITTING]


async def fall_back(runner: NativeRunner) -> None:
    opts = runner.options
    left_s = max(0.0, (runner.deadline_at or time.time()) - time.time())
    counts = await runner.astore.call(runner.store.counts, runner.run_id)
    runner.notice(f"deadline in {left_s:.0f} s: canceling {len(_known(runner))} batch(es) "
                  f"and sending the {counts.remaining} unfinished jobs realtime")
    await runner.cancel_batches(_known(runner))
    until = time.monotonic() + opts.cancel_wait_s
    while _known(runner) and time.monotonic() < until:
        await runner.poll(canceled=False, requeue_all=True)
        await runner.cancel_batches(_known(runner))  # any adopted meanwhile
        if _known(runner):
            await asyncio.sleep(min(opts.poll_initial_s, 1.0))
    for row in _known(runner):
        waiting = await runner.astore.call(runner.store.batch_members, runner.run_id, row.id)
        moved = await runner.astore.call(runner.store.requeue_batch, runner.run_id, row.id,
                                         list(waiting))
        runner.notice(f"batch {row.id} still canceling after {opts.cancel_wait_s:g} s: its "
                      f"{moved} jobs go realtime too (any it still completes is billed, "
                      "but recorded once)")
        runner.forget(row.id)
    runner.tally.fallback = True
