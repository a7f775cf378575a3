"""The native runner: a run's jobs through the provider's Message Batches, at half price.

One loop, until every job is final (or the run is stopped, over budget, or canceled):

- **submit**: claim pending jobs in input order and chunk them within the batch limits
  (requests, and bytes of the body actually sent), and within the budget: a chunk
  whose worst-case cost would pass ``--budget`` is not sent. Each submission is
  recorded *before* ``create`` (row ``submitting``, jobs ``submitted``) and the
  provider's id right after it (:mod:`laneway.runners.native_ledger`).
- **poll** every batch this worker owns, with backoff (``poll_initial_s`` growing by
  ``poll_factor`` to ``poll_max_s``; back to the start whenever something changes),
  reporting each batch's counts as they change.
- **collect** an ended batch's results as they stream in, committing them in groups:
  a result is recorded once per job, with its cost at the batch price. ``errored``
  results of a retryable type, and ``expired`` or ``canceled`` ones, go back to
  ``pending`` for the next chunk (within ``max_attempts``); request errors are final.
- **fall back**: with a deadline, when the time left is no more than what realtime
  would need for the jobs not finished (plus a margin), the batches are canceled, their
  results read (what they finished is kept, and billed), and the rest is left
  ``pending`` for the realtime runner (``NativeTally.fallback``; :mod:`.native_fallback`).

Stopping (Ctrl-C, ``stop_event``) or a crash leaves the batches running at the
provider; the same command later re-attaches to them (rows ``submitted``) and never
submits their jobs again. Rows left ``submitting`` are settled by
:mod:`laneway.runners.native_recover`. ``laneway cancel`` is :mod:`.native_cancel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from laneway import estimate
from laneway.errors import ConfigError, LanewayError, ProviderError, RequestError
from laneway.pricing import price_of
from laneway.provider import Provider
from laneway.provider_batches import Batches, BatchInfo
from laneway.runners.native_collect import Collector
from laneway.runners.native_fallback import fall_back, fallback_due
from laneway.runners.native_options import NativeOptions, NativeTally
from laneway.runners.native_recover import Recovery, recover_submitting
from laneway.runners.native_submit import Chunk, build_chunk
from laneway.store import AsyncStore
from laneway.store.batches import BatchRow, BatchStatus

if TYPE_CHECKING:
    from laneway.runs import RunConfig


class NativeRunner:
    def __init__(
        self, *, run_id: str, astore: AsyncStore, provider: Provider,
        options: NativeOptions | None = None, max_attempts: int = 6,
        budget_usd: float | None = None, deadline_at: float | None = None,
        realtime_s: Callable[[int], float] | None = None, worker_id: str = "main",
        on_notice: Callable[[str], None] | None = None,
        on_progress: Callable[[NativeTally], None] | None = None,
        stop_event: asyncio.Event | None = None, until: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.astore = astore
        self.store = astore.store
        self.provider = provider
        self.options = options or NativeOptions()
        self.max_attempts = max_attempts
        self.budget_usd = budget_usd
        self.deadline_at = deadline_at
        self.realtime_s = realtime_s
        self.worker_id = worker_id
        self.notice = on_notice or (lambda _m: None)
        self.on_progress = on_progress
        self.stop_event = stop_event or asyncio.Event()
        self.until = until
        self.api = Batches(provider)
        self.tally = NativeTally()
        self.collector = Collector(self)
        self.rows: dict[str, BatchRow] = {}
        self._seen: dict[str, BatchInfo] = {}
        self._worst: dict[str, float] = {}  # worst-case cost still committed, per batch
        self._spent_usd = 0.0
        self._budget_wait = False
        self._failed_creates = 0
        self._last_report = time.monotonic()
        self._quiet_recovery: set[str] = set()

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> NativeTally:
        counts = await self.astore.call(self.store.counts, self.run_id)
        self._spent_usd = counts.cost_usd
        await self._own()
        if self.rows:
            ids = ", ".join(r.provider_batch_id or r.id for r in self.rows.values())
            self.notice(f"re-attaching to {len(self.rows)} batch(es) submitted earlier: {ids}")
            for row in self.rows.values():
                params = await self.astore.call(self.store.submitted_params, self.run_id, [row.id])
                self._worst[row.id] = sum(self.worst_usd(p) for p in params)
        delay = self.options.poll_initial_s
        while True:
            canceled = await self._canceled()
            if canceled:
                self.tally.stop_reason = "canceled"
            if self.stop_event.is_set():
                self.tally.stop_reason = self.tally.stop_reason or "interrupted"
                break
            if self.until is not None and time.time() >= self.until:
                self.tally.stop_reason = self.tally.stop_reason or "timeout"
                break
            if not canceled and await fallback_due(self):
                await fall_back(self)
                break
            sent = 0
            if not canceled and not self._budget_wait and self.tally.stop_reason is None:
                sent = await self._submit_pending()
            changed = await self.poll(canceled=canceled)
            self.progress()
            if not self.rows:
                if sent or changed:
                    continue  # results sent jobs back: submit them at once
                break
            delay = self.options.poll_initial_s if (sent or changed) else min(
                self.options.poll_max_s, delay * self.options.poll_factor)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=self._nap_s(delay))
        self.progress()
        return self.tally

    def _nap_s(self, delay_s: float) -> float:
        """The poll delay, shortened so a deadline or a time limit is not slept past."""
        now = time.time()
        if self.deadline_at is not None:
            delay_s = min(delay_s, max(self.options.poll_initial_s,
                                       (self.deadline_at - now) / 20))
        if self.until is not None:
            delay_s = min(delay_s, max(0.0, self.until - now))
        return delay_s

    async def _canceled(self) -> bool:
        run = await self.astore.call(self.store.get_run, self.run_id)
        return run is not None and run.status == "canceled"

    async def _own(self) -> None:
        rows = await self.astore.call(self.store.own_batches, self.run_id,
                                      worker=self.worker_id, lease_s=self.options.lease_s)
        self.rows = {r.id: r for r in rows}
        self.tally.in_flight = sum(r.request_count for r in rows)

    # -- budget ----------------------------------------------------------------------------
    def worst_usd(self, params: dict[str, Any]) -> float:
        """The most a request can cost in a batch (0 when local or unpriced)."""
        if self.provider.is_local:
            return 0.0
        try:
            price = price_of(str(params.get("model", "")))
        except LanewayError:
            return 0.0
        tokens_in = estimate.input_tokens(params)
        tokens_out = int(params.get("max_tokens", 0))
        return (tokens_in * price.input + tokens_out * price.output) / 2_000_000

    def budget_left_usd(self) -> float | None:
        if self.budget_usd is None:
            return None
        return self.budget_usd - self._spent_usd - self.tally.cost_usd - sum(
            self._worst.values())

    # -- submitting ------------------------------------------------------------------------
    async def _submit_pending(self) -> int:
        sent = 0
        races = 0
        while not self.stop_event.is_set():
            chunk = await build_chunk(self)
            if chunk is None:
                break
            if not chunk.seqs:
                if chunk.over_budget:
                    self._over_budget(chunk)
                elif chunk.too_large:
                    continue  # all it claimed was too large (and is recorded): go on
                break
            ok = await self.astore.call(
                self.store.begin_batch, run_id=self.run_id, batch_id=chunk.batch_id,
                seqs=chunk.seqs, size_bytes=chunk.size_bytes, worker=self.worker_id,
                lease_s=self.options.lease_s)
            if not ok:  # a lease ran out and another worker took some: claim again
                races += 1
                if races > 3:
                    break
                continue
            await self._create(chunk)
            sent += len(chunk.seqs)
            if chunk.over_budget:
                self._over_budget(chunk)
                break
        return sent

    def _over_budget(self, chunk: Chunk) -> None:
        left = self.budget_left_usd() or 0.0
        if self.rows:
            if not self._budget_wait:
                self.notice(f"budget: ${left:.4f} left after the worst case of the batches in "
                            f"flight; {chunk.left_out} jobs wait for them to end")
            self._budget_wait = True
            return
        self.tally.stop_reason = "budget"
        self.notice(f"budget: the next jobs (worst case ${chunk.next_worst_usd:.4f}) would pass "
                    f"--budget ${self.budget_usd:g} (${left:.4f} left): not submitted; "
                    f"{chunk.left_out} jobs not sent")

    async def _create(self, chunk: Chunk) -> None:
        body = b'{"requests":[' + b",".join(chunk.parts) + b"]}"
        n = len(chunk.seqs)
        try:
            info = await self.api.create(body)
        except RequestError as err:
            await self.astore.call(self.store.abandon_batch, chunk.batch_id,
                                   refund_attempt=True)
            raise ConfigError(f"the provider refused a batch of {n} requests "
                              f"({len(body):,} bytes): {err}") from None
        except ProviderError as err:
            # It may exist at the provider all the same: the row stays ``submitting`` and
            # is settled by the recovery check on a later poll.
            self._failed_creates += 1
            self.notice(f"batch {chunk.batch_id}: create failed ({err}); will check whether "
                        "the provider has it before sending its jobs again")
            if self._failed_creates >= max(1, self.max_attempts):
                raise
            self.rows[chunk.batch_id] = await self._row(chunk.batch_id)
            self._worst[chunk.batch_id] = chunk.worst_usd
            return
        await self.astore.call(self.store.batch_submitted, chunk.batch_id, info.id)
        self._failed_creates = 0
        self.tally.batches += 1
        self.tally.requests += n
        self._worst[chunk.batch_id] = chunk.worst_usd
        self._seen[chunk.batch_id] = info
        self.rows[chunk.batch_id] = await self._row(chunk.batch_id)
        self.tally.in_flight += n
        self.notice(f"batch {chunk.batch_id} submitted as {info.id}: {n} requests, "
                    f"{_size(len(body))}")
        await self.astore.call(self.store.add_event, self.run_id, "batch", {
            "batch": chunk.batch_id, "provider_batch_id": info.id, "status": "submitted",
            "requests": n, "bytes": len(body)})

    async def _row(self, batch_id: str) -> BatchRow:
        rows = await self.astore.call(self.store.run_batches, self.run_id)
        return next(r for r in rows if r.id == batch_id)

    # -- polling ---------------------------------------------------------------------------
    async def poll(self, *, canceled: bool, requeue_all: bool = False) -> bool:
        await self._own()
        changed = False
        for row in list(self.rows.values()):
            if row.status == BatchStatus.SUBMITTING:
                changed |= await self._settle(row)
                continue
            assert row.provider_batch_id is not None
            try:
                info = await self.api.retrieve(row.provider_batch_id)
            except RequestError as err:
                if err.status != 404:
                    raise
                moved = await self.astore.call(self.store.abandon_batch, row.id)
                self.notice(f"batch {row.id} ({row.provider_batch_id}): the provider no longer "
                            f"has it; its {moved} unfinished jobs will be sent again")
                self.forget(row.id)
                changed = True
                continue
            except ProviderError as err:
                self.notice(f"batch {row.id}: poll failed ({err}); trying again")
                continue
            before = self._seen.get(row.id)
            self._seen[row.id] = info
            if not info.ended and (before is None or (before.status, before.counts) != (
                    info.status, info.counts)):
                self.notice(f"batch {row.id} ({info.id}): {info.describe()}")
            if info.ended:
                if await self.collector.collect(row, info, canceled=canceled,
                                                requeue_all=requeue_all):
                    self.forget(row.id)
                    self._budget_wait = False
                changed = True
        self._report()
        return changed

    def forget(self, batch_id: str) -> None:
        row = self.rows.pop(batch_id, None)
        self._worst.pop(batch_id, None)
        self._seen.pop(batch_id, None)
        if row is not None:
            self.tally.in_flight = max(0, self.tally.in_flight - row.request_count)

    async def _settle(self, row: BatchRow) -> bool:
        if time.time() - row.created_at < self.options.recover_after_s:
            return False
        outcome, info = await recover_submitting(
            self.api, self.astore, row, skew_s=self.options.recover_skew_s,
            notice=self.notice, quiet=row.id in self._quiet_recovery)
        self._quiet_recovery.add(row.id)
        if outcome is Recovery.LOST:
            self.forget(row.id)
            return True
        if outcome is Recovery.ADOPTED and info is not None:
            self.rows[row.id] = await self._row(row.id)
            self._seen[row.id] = info
            return True
        return False

    def _report(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.rows or (not force and now - self._last_report < self.options.report_every_s):
            return
        self._last_report = now
        processing = sum(i.counts.get("processing", 0) for i in self._seen.values())
        t = self.tally
        self.notice(f"native: {len(self.rows)} batch(es) in flight ({processing} requests "
                    f"processing); {t.succeeded} succeeded, {t.errored} errored so far, "
                    f"${t.cost_usd:.4f}")

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.tally)

    async def cancel_batches(self, rows: list[BatchRow]) -> int:
        """Ask the provider to cancel these batches; returns how many it accepted."""
        done = 0
        for row in rows:
            if row.provider_batch_id is None or row.status == BatchStatus.CANCELING:
                continue
            try:
                info = await self.api.cancel(row.provider_batch_id)
            except ProviderError as err:
                self.notice(f"batch {row.id}: cancel failed ({err})")
                continue
            await self.astore.call(self.store.set_batch_status, row.id, BatchStatus.CANCELING)
            self._seen[row.id] = info
            done += 1
            await self.astore.call(self.store.add_event, self.run_id, "batch", {
                "batch": row.id, "provider_batch_id": row.provider_batch_id,
                "status": "canceling"})
        return done


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 1e6 else f"{n_bytes / 1e3:.1f} kB"


async def run_native(
    *, run_id: str, astore: AsyncStore, provider: Provider, config: RunConfig,
    on_notice: Callable[[str], None] | None = None, stop_event: asyncio.Event | None = None,
    on_progress: Callable[[NativeTally], None] | None = None,
    realtime_s: Callable[[int], float] | None = None, options: NativeOptions | None = None,
) -> NativeTally:
    """Run ``run_id``'s jobs through native batches (see the module docstring).

    ``realtime_s(jobs)`` estimates how long realtime needs for that many of the run's
    jobs; with ``config.deadline_at`` it arms the deadline fallback.
    """
    native_options = options or getattr(config, "native", None) or NativeOptions.from_env()
    runner = NativeRunner(
        run_id=run_id, astore=astore, provider=provider, options=native_options,
        max_attempts=config.max_attempts, budget_usd=config.budget_usd,
        deadline_at=config.deadline_at, realtime_s=realtime_s, worker_id=config.worker_id or "main",
        on_notice=on_notice, on_progress=on_progress, stop_event=stop_event)
    return await runner.run()


__all__ = ["NativeOptions", "NativeRunner", "NativeTally", "run_native"]
