"""Workers: several processes (or hosts) sharing the runs of one PostgreSQL ledger.

``laneway run IN --db postgresql://... --no-work`` enqueues a run; each
``laneway worker --db postgresql://...`` (any number, anywhere) joins the runs that are
not finished, oldest first, and sends their jobs with a
:class:`~laneway.runners.realtime.RealtimeRunner` until every run is done:

- jobs are claimed under a lease (``FOR UPDATE SKIP LOCKED``, see
  :mod:`laneway.store.queue`) that the worker renews while it works; a worker that
  dies stops renewing, and its jobs go to the others when the lease runs out. So a
  worker whose runner has nothing left to claim does not leave while a run still has
  jobs held by others: it waits for their leases, and exits when the runs are done
  (``--follow`` keeps it waiting for new runs);
- each result is recorded once whoever sends it (see ``Store.finish``);
- rate limits are shared: each worker holds a share of the account's limits in the
  ledger's ``rate_shares``, beside every gateway's (:mod:`laneway.governor.quota`), and
  a 429 seen by one process is published in the ledger's ``pauses`` table and applied
  by the others within ``pause_poll_s`` (:class:`~laneway.governor.pauses.PauseSync`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from laneway.cost.budget import unpriced_models
from laneway.errors import ConfigError, StoreError
from laneway.governor.buckets import RateLimits
from laneway.governor.quota import QuotaSharing
from laneway.provider.backend import open_provider
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.tally import Tally
from laneway.runs import status as run_status
from laneway.runs.config import RunConfig
from laneway.runs.execute import Execution, realtime_runner, run_batches
from laneway.runs.options import background_governor
from laneway.store import AsyncStore, RunRow, Store, StoreSettings, open_store
from laneway.store.leases import LeaseKeeper, lease_s, new_worker_id
from laneway.store.statuses import RunStatus


@dataclass(kw_only=True)
class WorkerConfig:
    """The options of ``laneway worker``."""

    db: str
    #: Work on this run only (default: every run not finished).
    run_id: str | None = None
    #: Keep waiting for new runs when there is nothing to do.
    follow: bool = False
    provider: str = "auto"
    concurrency: int | None = None
    max_attempts: int = 6
    timeout_s: float = 600.0
    #: Stop after this many seconds with no answer from the API (see runners.api_wait).
    wait_for_api_s: float = 30.0
    stream: bool = False
    limits: RateLimits | None = None
    #: A claim's lease: how long a dead worker's jobs wait before others take them.
    lease_s: float = field(default_factory=lease_s)
    claim_size: int = 256
    #: How often to look again for work (new runs, leases run out), at most.
    poll_s: float = 1.0
    #: How often to read the pauses published by other workers.
    pause_poll_s: float = 0.5
    worker_id: str = field(default_factory=new_worker_id)


@dataclass
class RunWork:
    """What this worker did on one run."""

    run_id: str
    succeeded: int = 0
    errored: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    cost_usd: float = 0.0
    finished: bool = False
    note: str | None = None

    def add(self, tally: Tally) -> None:
        self.succeeded += tally.succeeded
        self.errored += tally.errored
        self.requests += tally.requests
        self.retries += tally.retries
        self.rate_limited += tally.rate_limited
        self.cost_usd += tally.cost_usd


@dataclass
class WorkerReport:
    worker_id: str
    runs: dict[str, RunWork] = field(default_factory=dict)
    pauses_published: int = 0
    pauses_applied: int = 0
    wall_s: float = 0.0
    stopped: bool = False
    #: Why the worker stopped on its own: ``auth`` or ``api_unreachable`` (runners.api_wait).
    stop_reason: str | None = None
    stop_detail: str | None = None

    @property
    def done(self) -> int:
        return sum(r.succeeded + r.errored for r in self.runs.values())


class Worker:
    """One worker process: see the module docstring. Use :func:`work`."""

    def __init__(self, config: WorkerConfig, *, store: Store, provider: Provider,
                 on_notice: Callable[[str], None] | None = None,
                 on_result: Callable[[str, Tally], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.astore = AsyncStore(store)
        self.provider = provider
        self.notice = on_notice or (lambda _msg: None)
        self.on_result = on_result
        self.governor = background_governor(config.limits)  # it serves no person
        #: Its share of the account's limits (the ledger's rate_shares, beside every
        #: gateway's and worker's), and the 429 pauses every process applies.
        self.quota = QuotaSharing(process=config.worker_id, pause_poll_s=config.pause_poll_s)
        self.leases = LeaseKeeper(store, worker=config.worker_id, lease_s=config.lease_s)
        self.report = WorkerReport(config.worker_id)
        self._runner: RealtimeRunner | None = None
        self._stop = asyncio.Event()
        #: Runs this worker cannot go on with (budget spent, a mode it cannot run).
        self._skip: set[str] = set()

    def stop(self) -> None:
        """Stop cleanly: nothing new is sent, held jobs are released."""
        self._stop.set()
        if self._runner is not None:
            self._runner.stop("interrupted")

    async def run(self) -> WorkerReport:
        started = time.monotonic()
        await self.quota.start(self.astore, self.governor, on_notice=self.notice)
        heart = asyncio.create_task(self._heartbeat(), name="laneway-heartbeat")
        self.leases.start()
        try:
            await self._reap()
            while not self._stop.is_set():
                runs = await self._open_runs()
                if not runs and not self.config.follow:
                    break
                progressed = False
                for run in runs:
                    if self._stop.is_set():
                        break
                    progressed |= await self._work_on(run)
                if not progressed:
                    await self._idle(runs)
            await self._settle_report()
        finally:
            self.leases.stop()
            with contextlib.suppress(Exception):  # the next worker takes them at once
                await self.astore.call(self.store.drop_holder, self.config.worker_id)
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart
            pauses = self.quota.pauses
            with contextlib.suppress(Exception):  # its share goes to the others at once
                await self.quota.stop()
            self.astore.close()
        if pauses is not None:
            self.report.pauses_published = pauses.published
            self.report.pauses_applied = pauses.applied
        self.report.wall_s = time.monotonic() - started
        self.report.stopped = self._stop.is_set() and self.report.stop_reason is None
        return self.report

    async def _heartbeat(self) -> None:
        while True:
            self.leases.beat()
            await asyncio.sleep(0.5)

    async def _settle_report(self) -> None:
        """Mark the runs another worker saw finish (this one may never have)."""
        for work in self.report.runs.values():
            if not work.finished:
                run = await self.astore.get_run(work.run_id)
                work.finished = run is not None and run.status == RunStatus.DONE

    async def _open_runs(self) -> list[RunRow]:
        if self.config.run_id is not None:
            run = await self.astore.get_run(self.config.run_id)
            if run is None:
                raise ConfigError(f"no run named {self.config.run_id!r} in "
                                  f"{self.store.settings}")
            runs = [] if run.status.closed else [run]
        else:
            runs = await self.astore.open_runs()
        for r in runs:
            if r.status == RunStatus.INGEST_FAILED:  # never worked on: its input needs fixing
                work = self.report.runs.setdefault(r.id, RunWork(r.id))
                if work.note is None:
                    work.note = f"skipped: {r.note or 'its ingest failed'}"
                    self.notice(f"run {r.id}: {work.note}")
        return [r for r in runs if r.id not in self._skip and r.status != RunStatus.INGEST_FAILED]

    async def _reap(self) -> None:
        """Give back what this host's dead workers held (see laneway.store.holders)."""
        reaped = await self.astore.call(self.store.reap_gone_holders)
        if reaped.holders:
            self.notice(f"{reaped.holders} stopped process(es) of this host held "
                        f"{reaped.jobs} job(s) and {reaped.batches} batch(es): taken up")

    async def _idle(self, runs: list[RunRow]) -> None:
        """Nothing to claim now: wait for a lease to run out (or its holder to be gone)
        or for new work."""
        await self._reap()
        wait_s = self.config.poll_s
        for run in runs:
            left = await self.astore.lease_wait_s(run.id)
            if left is not None:
                wait_s = min(wait_s, left + 0.05)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.05, wait_s))

    async def _work_on(self, run: RunRow) -> bool:
        """Send what can be claimed of ``run`` now; True if anything was done or closed."""
        work = self.report.runs.setdefault(run.id, RunWork(run.id))
        if run.budget_usd is not None and not self.provider.costs_nothing:
            unpriced = await self.astore.call(unpriced_models, self.store, run.id)
            if unpriced:  # its budget could not count them: never priced as zero
                self._skip.add(run.id)
                work.note = (f"skipped: --budget and no price known for {unpriced[0]!r} "
                             "(run it with `laneway run ... --price IN/OUT`)")
                self.notice(f"run {run.id}: {work.note}")
                return False
        if run.mode == "native":
            return await self._native(run, work)
        counts = await self.astore.counts(run.id)
        if run.ingest_done and counts.remaining == 0:
            return await self._close(run, work)
        runner = realtime_runner(self._execution(run), governor=self.governor,
                                 claim_size=self.config.claim_size,
                                 lease_s=self.config.lease_s)
        if self.on_result is not None:
            callback = self.on_result
            runner.on_result = lambda t: callback(run.id, t)
        self._runner = runner
        if self._stop.is_set():
            return False
        # Claims of this worker that no runner of it holds (a release lost to an outage):
        # claim() never takes this worker's own claims back, so give them back first.
        await self.astore.release_all(run.id, worker=self.config.worker_id)
        await self.astore.call(self.store.recount_run, run.id)  # if nothing is in flight
        self.leases.run_id = run.id
        try:
            tally = await runner.run()
        finally:
            self._runner = None
            self.leases.run_id = None
        work.add(tally)
        if tally.stop_reason == "budget":
            self._skip.add(run.id)
            work.note = "stopped: its budget would be exceeded"
            self.notice(f"run {run.id}: {work.note}")
            await run_status.stopped(self.astore, run.id)
        if tally.stop_reason == "auth" or (tally.stop_reason == "api_unreachable"
                                           and not self.config.follow):
            # The API, not the run: every run would fail alike (a following worker waits
            # and tries again; its jobs stay pending either way).
            self.report.stop_reason, self.report.stop_detail = tally.stop_reason, \
                tally.stop_detail
            self._stop.set()
            return False
        counts = await self.astore.counts(run.id)
        fresh = await self.astore.get_run(run.id)
        if fresh is not None and fresh.ingest_done and counts.remaining == 0:
            await self._close(fresh, work)
        return tally.requests > 0

    def _execution(self, run: RunRow) -> Execution:
        """``run`` as this worker carries it out: its budget and deadline, our options."""
        c = self.config
        config = RunConfig(
            concurrency=c.concurrency, max_attempts=c.max_attempts, timeout_s=c.timeout_s,
            wait_for_api_s=c.wait_for_api_s, stream=c.stream, limits=c.limits,
            budget_usd=run.budget_usd, deadline_at=run.deadline_at, worker_id=c.worker_id)
        return Execution(run_id=run.id, astore=self.astore, provider=self.provider,
                         config=config, total=run.total, notice=self.notice,
                         stop_event=self._stop)

    async def _close(self, run: RunRow, work: RunWork) -> bool:
        if not work.finished:
            work.finished = True
            self.notice(f"run {run.id}: finished")
        if run.status != RunStatus.DONE:
            await run_status.done(self.astore, run.id)
        return False

    async def _native(self, run: RunRow, work: RunWork) -> bool:
        # Native runs go through the native runner, which coordinates its submissions
        # in the ledger (Store.begin_batch and own_batches). Sending them realtime
        # would cost twice what the run's owner chose.
        tally = await run_batches(self._execution(run))
        work.add(tally)
        counts = await self.astore.counts(run.id)
        if counts.remaining == 0:
            await self._close(run, work)
        return tally.requests > 0 or tally.batches > 0


async def work(config: WorkerConfig, *, provider: Provider | None = None,
               on_notice: Callable[[str], None] | None = None,
               on_result: Callable[[str, Tally], None] | None = None,
               stop_event: asyncio.Event | None = None) -> WorkerReport:
    """Be one worker until the runs are done (or ``stop_event`` is set)."""
    settings = StoreSettings.from_dsn(config.db)
    if settings.kind != "postgresql":
        raise ConfigError(
            f"--db {settings}: laneway worker needs a PostgreSQL ledger "
            "(postgresql://USER@HOST/DB); a SQLite ledger belongs to one process: use "
            "`laneway run` on it")
    store = await asyncio.to_thread(open_store, settings)
    own_provider = provider is None
    try:
        if provider is None:
            provider = await asyncio.to_thread(open_provider, config.provider)
        worker = Worker(config, store=store, provider=provider, on_notice=on_notice,
                        on_result=on_result)
        watch: asyncio.Task[None] | None = None
        if stop_event is not None:
            async def watch_stop() -> None:
                assert stop_event is not None
                await stop_event.wait()
                worker.stop()

            watch = asyncio.create_task(watch_stop())
        try:
            return await worker.run()
        except DBAPIError as exc:  # the ledger went away for longer than retries cover
            raise StoreError(f"the ledger {settings} failed: {exc.orig}") from None
        finally:
            if watch is not None:
                watch.cancel()
    finally:
        if own_provider and provider is not None:
            await provider.aclose()
        store.close()
