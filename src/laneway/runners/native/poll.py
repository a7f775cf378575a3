"""Polling the batches this worker owns: ask the provider how each is doing, file the
results of those that ended (:mod:`.collect`), settle rows left ``submitting``
(:mod:`.recover`), and cancel batches when asked.
"""

from __future__ import annotations

import time

from laneway.errors import ProviderError, RequestError
from laneway.provider.batches import BatchInfo
from laneway.runners.native.collect import Collector
from laneway.runners.native.recover import Recovery, recover_submitting
from laneway.runners.native.state import NativeState
from laneway.store.batches import BatchRow
from laneway.store.statuses import BatchStatus


class Poller:
    def __init__(self, state: NativeState) -> None:
        self.state = state
        self.collector = Collector(state)
        self._last_report = time.monotonic()
        self._quiet_recovery: set[str] = set()

    async def own(self) -> None:
        """Take (or keep) the run's batches nobody else holds; renews their leases."""
        st = self.state
        rows = await st.astore.own_batches(st.run_id, worker=st.worker_id,
                                           lease_s=st.options.lease_s)
        st.rows = {r.id: r for r in rows}
        st.tally.in_flight = sum(r.request_count for r in rows)

    async def poll(self, *, canceled: bool, requeue_all: bool = False) -> bool:
        """Poll every owned batch once; True if anything changed."""
        st = self.state
        await self.own()
        changed = False
        for row in list(st.rows.values()):
            if row.status == BatchStatus.SUBMITTING:
                changed |= await self._settle(row)
                continue
            info = await self._retrieve(row)
            if info is None:
                changed |= row.id not in st.rows
                continue
            before = st.seen.get(row.id)
            st.seen[row.id] = info
            if not info.ended and (before is None or (before.status, before.counts) != (
                    info.status, info.counts)):
                st.notice(f"batch {row.id} ({info.id}): {info.describe()}")
            if info.ended:
                if await self.collector.collect(row, info, canceled=canceled,
                                                requeue_all=requeue_all):
                    st.forget(row.id)
                    st.budget_wait = False
                changed = True
        self._report()
        return changed

    async def _retrieve(self, row: BatchRow) -> BatchInfo | None:
        """The provider's view of a batch; ``None`` if the poll failed (try again later)
        or the provider no longer has it (its jobs go back to pending, the row is
        forgotten)."""
        st = self.state
        assert row.provider_batch_id is not None
        try:
            return await st.batches.retrieve(row.provider_batch_id)
        except RequestError as err:
            if err.status != 404:
                raise
            moved = await st.astore.abandon_batch(row.id)
            st.notice(f"batch {row.id} ({row.provider_batch_id}): the provider no longer "
                      f"has it; its {moved} unfinished jobs will be sent again")
            st.forget(row.id)
        except ProviderError as err:
            st.notice(f"batch {row.id}: poll failed ({err}); trying again")
        return None

    async def _settle(self, row: BatchRow) -> bool:
        st = self.state
        if time.time() - row.created_at < st.options.recover_after_s:
            return False
        outcome, info = await recover_submitting(
            st.batches, st.astore, row, skew_s=st.options.recover_skew_s,
            notice=st.notice, quiet=row.id in self._quiet_recovery)
        self._quiet_recovery.add(row.id)
        if outcome is Recovery.LOST:
            st.forget(row.id)
            return True
        if outcome is Recovery.ADOPTED and info is not None:
            st.rows[row.id] = await st.row(row.id)
            st.seen[row.id] = info
            return True
        return False

    def _report(self) -> None:
        st = self.state
        now = time.monotonic()
        if not st.rows or now - self._last_report < st.options.report_every_s:
            return
        self._last_report = now
        processing = sum(i.counts.get("processing", 0) for i in st.seen.values())
        t = st.tally
        st.notice(f"native: {len(st.rows)} batch(es) in flight ({processing} requests "
                  f"processing); {t.succeeded} succeeded, {t.errored} errored so far, "
                  f"${t.cost_usd:.4f}")

    async def cancel_batches(self, rows: list[BatchRow]) -> int:
        """Ask the provider to cancel these batches; returns how many it accepted."""
        st = self.state
        done = 0
        for row in rows:
            if row.provider_batch_id is None or row.status == BatchStatus.CANCELING:
                continue
            try:
                info = await st.batches.cancel(row.provider_batch_id)
            except ProviderError as err:
                st.notice(f"batch {row.id}: cancel failed ({err})")
                continue
            await st.astore.set_batch_status(row.id, BatchStatus.CANCELING)
            st.seen[row.id] = info
            done += 1
            await st.astore.add_event(st.run_id, "batch", {
                "batch": row.id, "provider_batch_id": row.provider_batch_id,
                "status": "canceling"})
        return done
