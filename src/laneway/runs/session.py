"""A run's life in this process, once taken up: begun, planned, carried out, ended.

:class:`RunSession` is a run from the moment this process has taken it up
(:func:`~.prepare.prepare`, :func:`~.prepare.take_up`) to its end, whoever started it:

- ``laneway.run()`` (:mod:`.library`) calls :meth:`RunSession.carry_out`: the run marked
  ``running``, planned (``--mode auto``, a deadline), carried out with the process's
  share of the account's limits, and ended in :func:`~.status.final_status`'s status;
- :class:`~.background.BackgroundRuns` (``HybridAgent.submit`` and the gateway's
  Message Batches) starts runs that go on while the caller does other things:
  :meth:`RunSession.begin` marks the run ``running`` (or ``done`` when nothing is left)
  and :meth:`RunSession.work`, kept as a task, carries it out and ends it (``canceled``
  when a cancel interrupted it, ``failed`` when its work raised), gives back its claims
  and releases its lock;
- ``laneway worker`` (:mod:`.worker`) carries out its share of runs that several
  processes send at once, piece by piece: :meth:`RunSession.finished` (every job final:
  the run ``done``), :meth:`RunSession.share_runner` and :meth:`RunSession.share` (what
  it can claim now; ``stopped`` when its budget is spent), or
  :meth:`RunSession.share_batches` (a native run's batches).

A cancel is :mod:`.cancel`'s. Every status is written through :mod:`.status`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

from laneway.governor.core import Governor
from laneway.governor.quota import QuotaSharing
from laneway.runners.native import NativeTally
from laneway.runners.planner import Plan, PlannerOptions
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.tally import Tally
from laneway.runs import status as run_status
from laneway.runs.config import RunConfig
from laneway.runs.execute import (
    Execution,
    execute,
    realtime_runner,
    run_batches,
    watch_realtime,
)
from laneway.runs.options import background_governor
from laneway.runs.plan import plan_run
from laneway.runs.watch import RunWatch
from laneway.store import AsyncStore, rate_shares
from laneway.store.runlock import RunLock
from laneway.store.statuses import RunStatus


@dataclass(kw_only=True)
class RunSession:
    """A run this process carries out in the background: see the module docstring."""

    ex: Execution
    #: This process's hold on the run (SQLite), released when the run ends.
    lock: RunLock | None
    #: The run was canceled before it was taken up: only its batches are collected.
    canceled_before: bool = False
    #: A cancel interrupted it here (set by the canceller before the work is abandoned).
    canceled: bool = False
    #: Its end is being written (:meth:`end`): a cancel waits for it, not interrupts it.
    ending: bool = False
    #: A realtime run's runner, watched (its live progress); None through batches.
    watch: RunWatch | None = None
    #: The mode it is carried out in (``native`` for a run canceled before).
    mode: str = "realtime"

    @property
    def run_id(self) -> str:
        return self.ex.run_id

    # -- in the foreground: laneway.run() ------------------------------------------------
    async def carry_out(self) -> tuple[str, Tally, Plan | None]:
        """Start, plan, execute and end the run; returns the mode that ran, its tally,
        and the plan (``--mode auto``, or a deadline)."""
        ex = self.ex
        astore, config, provider = ex.astore, ex.config, ex.provider
        plan = realtime_s = None
        mode = config.mode
        if self.canceled_before:  # laneway cancel: only collect what batches still hold
            ex.notice(f"run {ex.run_id} was canceled: nothing new is sent")
            mode = "native"
        else:
            await run_status.started(astore, ex.run_id, mode=config.mode,
                                     provider=provider.kind)
            if config.mode == "auto" or config.deadline_at is not None:
                plan, realtime_s = await self._plan()
                if config.mode == "auto":
                    ex.notice(plan.reason)
                    mode = plan.mode
                    await run_status.mode_chosen(astore, ex.run_id, mode)
        ex.governor, sharing = await _quota(astore, config)
        if config.mode == "auto":  # the planner chose batches: realtime if there are none
            ex.on_no_batches = _go_realtime
        try:
            mode, tally = await execute(ex, mode, realtime_s)
        finally:
            if sharing is not None:  # its share goes to the others at once
                await sharing.stop()
        counts = await astore.counts(ex.run_id)
        status = run_status.final_status(
            complete=counts.remaining == 0, stop_reason=tally.stop_reason,
            canceled=self.canceled_before or tally.stop_reason == "canceled")
        # The mode that ran (``auto`` became realtime or native; native may become hybrid).
        await run_status.ended(astore, ex.run_id, status,
                               mode=None if self.canceled_before else mode)
        return mode, tally, plan

    # -- in the background: BackgroundRuns (HybridAgent.submit, the gateway's batches) -----

    async def begin(self, mode: str, *, event_every_s: float = 1.0) -> bool:
        """Mark the run started (``running`` in ``mode``, or ``done`` when nothing is
        left) and make its work ready; False (the lock released) when nothing is left."""
        ex = self.ex
        try:
            before = await ex.astore.counts(ex.run_id)
            if not self.canceled_before:
                if before.remaining == 0:
                    await run_status.done(ex.astore, ex.run_id)
                else:
                    await run_status.started(ex.astore, ex.run_id, mode=mode,
                                             provider=ex.provider.kind)
        except BaseException:
            self.release()
            raise
        if before.remaining == 0:
            self.release()
            return False
        self.mode = "native" if self.canceled_before else mode
        if self.mode == "realtime":
            self.watch = watch_realtime(ex, before, governor=ex.governor,
                                        event_every_s=event_every_s)
        return True

    async def work(self) -> None:
        """Carry the run out, then end it (whatever happened: see :meth:`end`)."""
        tally: Tally | None = None
        status = RunStatus.STOPPED  # interrupted (the process closing)
        try:
            tally = await (self.watch.run() if self.watch is not None else self._batches())
        except Exception:
            status = RunStatus.FAILED
            raise
        finally:
            await self.end(tally, status)

    async def _batches(self) -> Tally:
        """A run through Message Batches (``hybrid``: the deadline's fallback armed)."""
        ex = self.ex
        realtime_s = None
        if self.mode == "hybrid" and ex.config.deadline_at is not None:
            _plan, realtime_s = await self._plan()
        _mode, tally = await execute(ex, self.mode, realtime_s)
        return tally

    async def _plan(self) -> tuple[Plan, Callable[[int], float]]:
        """The run's plan and its ``jobs -> realtime seconds``, from everything the run
        was given (its limits, planner options, prices, deadline and budget): the same
        in the foreground and in the background."""
        ex, config = self.ex, self.ex.config
        return await plan_run(
            ex.astore, ex.run_id, ex.provider, limits=config.limits,
            options=replace(config.planner or PlannerOptions(), prices=ex.prices),
            concurrency=config.concurrency, deadline_at=config.deadline_at,
            budget_usd=config.budget_usd, worker_id=config.worker_id or "main")

    async def end(self, tally: Tally | None, status: RunStatus = RunStatus.STOPPED) -> None:
        """Write the status the run ended in (:func:`~.status.final_status` of its
        ``tally``; ``status`` when its work did not return), give back its claims,
        release its lock.

        Once it has begun (``ending``) a cancel waits for it instead of cancelling it
        again; if it is interrupted anyway, the lock is still released, and a canceled
        run never shows as stopped.
        """
        astore = self.ex.astore
        self.ending = True
        try:
            if tally is not None:
                counts = await astore.counts(self.run_id)
                status = run_status.final_status(
                    complete=counts.remaining == 0,
                    canceled=self.canceled or tally.stop_reason == "canceled",
                    stop_reason=tally.stop_reason, unfinished=RunStatus.STOPPED)
        finally:
            try:
                if self.canceled:  # a cancel interrupted the run (or came as it ended)
                    status = RunStatus.CANCELED
                with contextlib.suppress(Exception):
                    if tally is None and self.watch is not None:  # else the watch wrote it
                        await self.watch.write("done")
                    await run_status.ended(astore, self.run_id, status)
                    await astore.call(astore.store.drop_holder, self.ex.config.worker_id)
            finally:
                self.release()

    # -- its share, beside other processes: laneway worker --------------------------------

    async def finished(self) -> bool:
        """Every job of the run is final (and, but for a native run, its whole input is
        in the ledger): the run is marked ``done`` if it is not yet."""
        astore = self.ex.astore
        if (await astore.counts(self.run_id)).remaining:
            return False
        run = await astore.get_run(self.run_id)
        if run is None or (self.mode != "native" and not run.ingest_done):
            return False
        if run.status != RunStatus.DONE:
            await run_status.done(astore, self.run_id)
        return True

    def share_runner(self, governor: Governor, *, claim_size: int,
                     lease_s: float) -> RealtimeRunner:
        """A realtime runner for what this process can claim of the run now (claims
        under a lease, ``governor`` shared across the runs it works on)."""
        return realtime_runner(self.ex, governor=governor, claim_size=claim_size,
                               lease_s=lease_s)

    async def share_batches(self) -> NativeTally:
        """A native run's batches: submitted (coordinated in the ledger, see
        ``Store.begin_batch``: never twice) and collected."""
        return await run_batches(self.ex)

    async def share(self, runner: RealtimeRunner) -> Tally:
        """Send this process's share of the run: what ``runner`` (see
        :meth:`share_runner`) can claim. A share that would exceed the run's budget
        leaves the run ``stopped``."""
        ex = self.ex
        # Claims of this process that no runner of it holds (a release lost to an
        # outage): claim() never takes its own claims back, so give them back first.
        await ex.astore.release_all(self.run_id, worker=ex.config.worker_id)
        await ex.astore.call(ex.astore.store.recount_run, self.run_id)  # none in flight
        tally = await runner.run()
        if tally.stop_reason == "budget":
            await run_status.stopped(ex.astore, self.run_id)
        return tally

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None


async def _go_realtime(_why: str) -> bool:
    return True


async def _quota(astore: AsyncStore, config: RunConfig
                 ) -> tuple[Governor, QuotaSharing | None]:
    """The run's governor, holding a share of the account's limits in the ledger when
    others may send on it: a PostgreSQL ledger, or a SQLite one that a ``laneway serve``
    shares now (see :mod:`laneway.governor.quota`)."""
    governor = background_governor(config.limits)
    store = astore.store
    if not store.is_postgres and not await astore.call(rate_shares.live, store):
        return governor, None
    sharing = QuotaSharing()
    await sharing.start(astore, governor)
    return governor, sharing


__all__ = ["RunSession"]
