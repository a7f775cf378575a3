"""The native runner's loop: submit, poll, collect, fall back, until every job is final
(or the run is stopped, over budget, canceled, or out of time); see the package's
docstring (:mod:`laneway.runners.native`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from laneway.cost.prices import NO_PRICES, PriceTable
from laneway.provider.client import Provider
from laneway.runners.native.fallback import fall_back, fallback_due
from laneway.runners.native.options import NativeOptions, NativeTally
from laneway.runners.native.poll import Poller
from laneway.runners.native.state import NativeState
from laneway.runners.native.submit import Submitter
from laneway.store import AsyncStore
from laneway.store.batches import BatchRow
from laneway.store.statuses import RunStatus


class NativeRunner:
    def __init__(
        self, *, run_id: str, astore: AsyncStore, provider: Provider,
        options: NativeOptions | None = None, max_attempts: int = 6,
        budget_usd: float | None = None, deadline_at: float | None = None,
        realtime_s: Callable[[int], float] | None = None, worker_id: str = "main",
        on_notice: Callable[[str], None] | None = None,
        on_progress: Callable[[NativeTally], None] | None = None,
        stop_event: asyncio.Event | None = None, until: float | None = None,
        prices: PriceTable = NO_PRICES,
    ) -> None:
        self.state = NativeState(
            run_id=run_id, astore=astore, provider=provider,
            options=options or NativeOptions(), notice=on_notice or (lambda _m: None),
            max_attempts=max_attempts, budget_usd=budget_usd, worker_id=worker_id,
            on_progress=on_progress, stop_event=stop_event or asyncio.Event(), prices=prices)
        self.deadline_at = deadline_at
        self.realtime_s = realtime_s
        self.until = until
        self.submitter = Submitter(self.state)
        self.poller = Poller(self.state)

    @property
    def tally(self) -> NativeTally:
        return self.state.tally

    async def cancel_batches(self, rows: list[BatchRow]) -> int:
        """Ask the provider to cancel these batches; returns how many it accepted."""
        return await self.poller.cancel_batches(rows)

    async def run(self) -> NativeTally:
        st = self.state
        await self._resume()
        delay = st.options.poll_initial_s
        while True:
            canceled = await self._canceled()
            if canceled:
                st.tally.stop_reason = "canceled"
            if self._stopping():
                break
            if not canceled and await fallback_due(st, deadline_at=self.deadline_at,
                                                   realtime_s=self.realtime_s):
                await fall_back(st, self.poller, deadline_at=self.deadline_at)
                break
            sent = 0
            if not canceled and not st.budget_wait and st.tally.stop_reason is None:
                sent = await self.submitter.submit_pending()
            changed = await self.poller.poll(canceled=canceled)
            st.progress()
            if not st.rows:
                if sent or changed:
                    continue  # results sent jobs back: submit them at once
                break
            delay = st.options.poll_initial_s if (sent or changed) else min(
                st.options.poll_max_s, delay * st.options.poll_factor)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(st.stop_event.wait(), timeout=self._nap_s(delay))
        st.progress()
        return st.tally

    async def _resume(self) -> None:
        """The batches submitted earlier (re-attached; their reservations of the budget
        are in the ledger)."""
        st = self.state
        await self.poller.own()
        if not st.rows:
            return
        ids = ", ".join(r.provider_batch_id or r.id for r in st.rows.values())
        st.notice(f"re-attaching to {len(st.rows)} batch(es) submitted earlier: {ids}")

    def _stopping(self) -> bool:
        """Stopped (Ctrl-C, ``stop_event``) or out of time: the batches keep running."""
        t = self.state.tally
        if self.state.stop_event.is_set():
            t.stop_reason = t.stop_reason or "interrupted"
            return True
        if self.until is not None and time.time() >= self.until:
            t.stop_reason = t.stop_reason or "timeout"
            return True
        return False

    def _nap_s(self, delay_s: float) -> float:
        """The poll delay, shortened so a deadline or a time limit is not slept past."""
        now = time.time()
        if self.deadline_at is not None:
            delay_s = min(delay_s, max(self.state.options.poll_initial_s,
                                       (self.deadline_at - now) / 20))
        if self.until is not None:
            delay_s = min(delay_s, max(0.0, self.until - now))
        return delay_s

    async def _canceled(self) -> bool:
        st = self.state
        run = await st.astore.get_run(st.run_id)
        return run is not None and run.status == RunStatus.CANCELED


async def run_native(
    *, run_id: str, astore: AsyncStore, provider: Provider,
    options: NativeOptions | None = None, max_attempts: int = 6,
    budget_usd: float | None = None, deadline_at: float | None = None,
    realtime_s: Callable[[int], float] | None = None, worker_id: str = "main",
    on_notice: Callable[[str], None] | None = None,
    on_progress: Callable[[NativeTally], None] | None = None,
    stop_event: asyncio.Event | None = None, prices: PriceTable = NO_PRICES,
) -> NativeTally:
    """Run ``run_id``'s jobs through native batches (see :mod:`laneway.runners.native`).

    With ``deadline_at`` and ``realtime_s(jobs)`` (how long realtime needs for that many
    of the run's jobs) the deadline fallback is armed: when it fires, the tally comes
    back with ``fallback`` set and ``left_for_realtime`` jobs pending, for the caller
    to send realtime. ``options`` default to :meth:`NativeOptions.from_env`.
    """
    runner = NativeRunner(
        run_id=run_id, astore=astore, provider=provider,
        options=options or NativeOptions.from_env(), max_attempts=max_attempts,
        budget_usd=budget_usd, deadline_at=deadline_at, realtime_s=realtime_s,
        worker_id=worker_id, on_notice=on_notice, on_progress=on_progress,
        stop_event=stop_event, prices=prices)
    return await runner.run()
