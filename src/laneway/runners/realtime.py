"""The realtime runner: a pool of async workers that sends a run's jobs one request each.

Jobs are claimed from the ledger in input order, sent when the governor admits them
(background lane), and each result is committed (in groups) before it is counted.
Retryable failures go back to the queue after a backoff; a 429 pauses the lane and
is not held against the job; request errors are recorded and the run goes on (the
rest, outages and refused keys: :mod:`laneway.runners.api_wait`).

``stop()`` stops cleanly: nothing new is sent, requests in flight finish (or, on a
second stop, are cancelled), and every job not finished is released for the next run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from laneway.cost import tokens
from laneway.cost.answered import price_answer
from laneway.cost.prices import Usage, worst_cost
from laneway.errors import (
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestError,
    StalledError,
)
from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.governor.state import Permit
from laneway.provider.client import Provider
from laneway.runners import api_wait as W
from laneway.runners.realtime_options import RealtimeOptions
from laneway.runners.tally import Tally
from laneway.runners.timeouts import RequestTimeouts
from laneway.runners.until_done import until_done
from laneway.store import AsyncStore, ClaimedJob, Finished, GroupWriter
from laneway.store.statuses import JobStatus
from laneway.wire.batches import errored, succeeded

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Job:
    claimed: ClaimedJob
    attempts: int
    rate_limited: int
    est_input: int
    unanswered: int = 0  # errors with no answer (they use no attempts)
    timeouts: int = 0


class RealtimeRunner:
    def __init__(
        self, *, run_id: str, astore: AsyncStore, provider: Provider, governor: Governor,
        options: RealtimeOptions | None = None,
        on_result: Callable[[Tally], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.astore = astore
        self.provider = provider
        self.governor = governor
        self.options = options or RealtimeOptions()
        self.tally = Tally()
        self.on_result = on_result
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()
        self._n_workers = 0
        self._uncommitted = 0  # results handed to the writer, not yet committed
        self._commit_done = asyncio.Event()
        self._held: dict[int, _Job] = {}  # every claimed job not yet final
        self._parked: set[int] = set()  # held, not sent again by this run
        self.api_wait = W.ApiWait(wait_s=self.options.wait_for_api_s)
        self.timeouts = RequestTimeouts(ceiling_s=self.options.timeout_s)
        self.timeouts.streams.ceiling_s = self.options.idle_timeout_s
        self._stopping = asyncio.Event()
        #: Set when the claimer should look again now, not at its next tick (the last
        #: held job final: the run is over; stopping).
        self._claimer_wake = asyncio.Event()
        self._exhausted = False
        self._rng = random.Random()
        self._writer = GroupWriter(astore)
        self._timers: set[asyncio.TimerHandle] = set()
        self._workers: list[asyncio.Task[None]] = []

    # -- control -------------------------------------------------------------------------
    def stop(self, reason: str = "interrupted", detail: str | None = None) -> None:
        """Send nothing new; let requests in flight finish."""
        if self.tally.stop_reason is None:
            self.tally.stop_reason = reason
            self.tally.stop_detail = detail
        self._set_stopping()

    def _set_stopping(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._claimer_wake.set()
        for _ in range(self._n_workers):  # wake every idle worker
            self._queue.put_nowait(None)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> Tally:
        limit = self.options.concurrency
        if limit is not None:
            self.governor.fix_concurrency(limit)
        n_workers = limit or self.governor.max_concurrency
        self._n_workers = n_workers
        self._writer.start()
        claimer = asyncio.create_task(self._claimer(), name="laneway-claimer")
        renewer = asyncio.create_task(self._renewer(), name="laneway-leases")
        workers = [asyncio.create_task(self._worker(), name=f"laneway-worker-{i}")
                   for i in range(n_workers)]
        self._workers = workers
        try:
            await until_done(claimer, workers, watch=(renewer, self._writer.task))
        finally:
            for t in (claimer, renewer, *workers):
                t.cancel()
            for t in (claimer, renewer, *workers):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            for h in self._timers:
                h.cancel()
            await self._writer.close()
            await self._release_held()
        return self.tally

    async def _release_held(self) -> None:
        if not self._held:
            return
        # A parked job gets a full set of attempts on the next run.
        attempts = {seq: (0 if seq in self._parked else j.attempts, j.rate_limited)
                    for seq, j in self._held.items()}
        seqs = list(self._held)
        self._held.clear()
        await self.astore.release(self.run_id, seqs, worker=self.options.worker_id,
                                  attempts=attempts)

    # -- claiming ------------------------------------------------------------------------
    async def _claimer(self) -> None:
        low_water = max(self.options.claim_size // 2, 1)
        while not self.stopping:
            if self._queue.qsize() < low_water and not self._exhausted:
                claimed = await self.astore.claim(
                    self.run_id, worker=self.options.worker_id,
                    limit=self.options.claim_size, lease_s=self.options.lease_s)
                # Fewer than asked: none is left to claim (no need to ask once more).
                self._exhausted = len(claimed) < self.options.claim_size
                if self.options.max_seq is not None:
                    over = [c.seq for c in claimed if c.seq >= self.options.max_seq]
                    if over:
                        await self.astore.release(self.run_id, over)
                    claimed = [c for c in claimed if c.seq < self.options.max_seq]
                    self._exhausted |= not claimed
                for c in claimed:
                    job = _Job(c, c.attempts, c.rate_limited, tokens.input_tokens(c.params))
                    self._held[c.seq] = job
                    self._queue.put_nowait(job)
            if self._exhausted and len(self._held) == len(self._parked):
                self._set_stopping()
                break
            # (asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel.)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._claimer_wake.wait()
            self._claimer_wake.clear()

    async def _renewer(self) -> None:
        """Renew the lease of every job held (queued, in flight, waiting on a pause or a
        backoff) every third of the lease, on every database, for as long as the run
        lasts: a job is sent again only when the process that held it is gone."""
        while True:
            await asyncio.sleep(self.options.lease_s / 3)
            if self._held:
                await self.astore.extend_lease(self.run_id, list(self._held),
                                               worker=self.options.worker_id,
                                               lease_s=self.options.lease_s)

    # -- working -------------------------------------------------------------------------
    async def _next_job(self) -> _Job | None:
        if self.stopping:
            return None
        job = await self._queue.get()
        # After a stop, a job taken from the queue stays held and is released at the end.
        return None if self.stopping else job

    def _worst_cost(self, job: _Job) -> float:
        """The most this job's next request can cost (0 when local or unpriced)."""
        return worst_cost(job.claimed.model, job.est_input,
                          int(job.claimed.params.get("max_tokens", 0)),
                          local=self.provider.costs_nothing, prices=self.options.prices)

    async def _reserve(self, job: _Job) -> float | None:
        """Reserve the job's worst case of the run's budget in the ledger, where every
        process on the run reserves (see laneway.store.run_budget); returns it (0 with no
        budget), or None if it would pass the budget."""
        budget = self.options.budget_usd
        worst = self._worst_cost(job)
        if budget is None or not worst:  # nothing to reserve (free, or no budget)
            return 0.0
        ok = await self.astore.call(self.astore.store.reserve_run, self.run_id, worst,
                                    budget_usd=budget)
        return worst if ok else None

    async def _worker(self) -> None:
        while True:
            job = await self._next_job()
            if job is None:
                return
            # Requests in flight plus results not yet durable stay within the concurrency,
            # so a kill can make at most that many requests go out twice.
            limit = self.options.concurrency or self.governor.state(job.claimed.model).aimd.value
            while self.tally.in_flight + self._uncommitted >= limit and self._uncommitted:
                self._commit_done.clear()
                await self._commit_done.wait()
            try:
                await self._attempt(job)
            except (ProviderError, asyncio.CancelledError, KeyboardInterrupt):
                raise
            except Exception as exc:  # a bug or a bad job must not stall the whole run
                log.exception("job %s failed unexpectedly", job.claimed.custom_id)
                await self._record(job, Finished(
                    run_id=self.run_id, seq=job.claimed.seq, status=JobStatus.ERRORED,
                    result=errored("internal_error", f"{type(exc).__name__}: {exc}"),
                    attempts=job.attempts, error_type="internal_error",
                    error_message=f"{type(exc).__name__}: {exc}"))

    async def _attempt(self, job: _Job) -> None:
        params = job.claimed.params
        model = job.claimed.model
        max_tokens = int(params.get("max_tokens", 1))
        fast = self.governor.try_acquire(Lane.BACKGROUND, model, input_tokens=job.est_input,
                                         max_tokens=max_tokens)
        if fast is not None:
            await self._send(job, fast)
            return
        acquire = asyncio.ensure_future(self.governor.acquire(
            Lane.BACKGROUND, model, input_tokens=job.est_input, max_tokens=max_tokens))
        stopped = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({acquire, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not acquire.done():  # stopping: give up the place in line; the job stays held
            acquire.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await acquire
            return
        permit = acquire.result()
        if self.stopping:  # admitted just as the stop came: do not send
            self.governor.release(permit, outcome="canceled")
            return
        await self._send(job, permit)

    async def _send(self, job: _Job, permit: Permit) -> None:
        params = job.claimed.params
        model = job.claimed.model
        worst = await self._reserve(job)
        if worst is None:  # the job stays held, and is released pending at the end
            self.governor.release(permit, outcome="canceled")
            self.stop("budget")
            return
        self.tally.in_flight += 1
        self.tally.requests += 1
        try:
            with self.timeouts.stall_watch(lambda: self.governor.set_aside(permit)):
                reply = await self.timeouts.send(self.provider, params,
                                                 stream=self.options.stream,
                                                 timeouts=job.timeouts)
        except ProviderError as err:  # not answered: nothing billed
            await self.astore.call(self.astore.store.release_run, self.run_id, worst)
            self.tally.in_flight -= 1
            self.governor.release_error(permit, err)
            await self._failed(job, err)
            return
        except BaseException:  # it may have been answered: it stays charged its worst case
            self.tally.in_flight -= 1
            self.governor.release(permit, outcome="canceled")
            raise
        self.tally.in_flight -= 1
        self.governor.release(permit, outcome="ok", usage=reply.usage, headers=reply.headers)
        job.attempts += 1
        usage = Usage.from_api(reply.usage)
        self.api_wait.answered()
        priced = price_answer(model, reply.message, usage, free=self.provider.costs_nothing,
                              prices=self.options.prices)
        await self._record(job, Finished(
            run_id=self.run_id, seq=job.claimed.seq, status=JobStatus.SUCCEEDED,
            result=succeeded(reply.message), attempts=job.attempts,
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
            cache_creation_input_tokens=usage.cache_creation_input_tokens,
            cache_read_input_tokens=usage.cache_read_input_tokens, cost_usd=priced.cost_usd,
            answered_model=priced.answered, asked_cost_usd=priced.asked_cost_usd,
            reserved_usd=worst))

    async def _failed(self, job: _Job, err: ProviderError) -> None:
        if W.refused_key(err):  # every request would be refused: the job stays pending
            self.stop(W.AUTH, W.auth_message(self.provider.base_url, err))
            return
        if W.no_answer(err):
            self._unanswered(job, err)
            return
        self.api_wait.answered()
        rate_limited = isinstance(err, RateLimitedError)
        if rate_limited:
            job.rate_limited += 1
            self.tally.rate_limited += 1
        else:
            job.attempts += 1
        policy = self.options.retry
        if policy.should_retry(err, attempts=job.attempts, rate_limited=job.rate_limited):
            self.tally.retries += 1
            # A 429's wait is the governor's lane pause; the job just goes back in line.
            delay = 0.0 if rate_limited else policy.delay_s(err, attempts=job.attempts,
                                                            rng=self._rng)
            self._requeue(job, delay)
            return
        if not isinstance(err, RequestError):  # not the request's fault: left pending
            self._park(job)
            return
        await self._record(job, Finished(
            run_id=self.run_id, seq=job.claimed.seq, status=JobStatus.ERRORED,
            result=errored(err.error_type or "api_error", err.message, err.request_id),
            attempts=job.attempts, error_type=err.error_type, error_message=err.message,
        ))

    def _unanswered(self, job: _Job, err: ProviderError) -> None:
        job.unanswered += 1
        job.timeouts += isinstance(err, ProviderTimeoutError | StalledError)
        pause_s = self.api_wait.unanswered(err)
        if self.api_wait.given_up:  # the job stays held and is released, still pending
            self.stop(W.UNREACHABLE, self.api_wait.message(self.provider.base_url))
            return
        if pause_s is not None:
            self.governor.pause(job.claimed.model, pause_s, reason="unreachable", publish=False)
        policy = self.options.retry
        if job.unanswered >= 2 * policy.max_attempts:
            self._park(job)
            return
        self.tally.retries += 1
        self._requeue(job, min(self.api_wait.cap_s,
                               policy.delay_s(err, attempts=job.unanswered, rng=self._rng)))

    def _park(self, job: _Job) -> None:  # held, not sent again; released pending at the end
        self._parked.add(job.claimed.seq)
        self.tally.parked += 1
        self._maybe_over()

    def _maybe_over(self) -> None:
        """Wake the claimer at once when nothing is left to do (it would see it within
        its tick: up to 50 ms of a run spent waiting at its end)."""
        if self._exhausted and len(self._held) == len(self._parked):
            self._claimer_wake.set()

    def _requeue(self, job: _Job, delay_s: float) -> None:
        if delay_s <= 0:
            self._queue.put_nowait(job)
            return
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def put() -> None:
            self._timers.discard(handle)
            self._queue.put_nowait(job)

        handle = loop.call_later(delay_s, put)
        self._timers.add(handle)

    async def _record(self, job: _Job, item: Finished) -> None:
        """Hand the result to the group writer and move on: the worker need not wait for
        the commit. The job stays held, and uncounted, until its result is durable."""
        fut = self._writer.submit(item)
        self._uncommitted += 1
        fut.add_done_callback(lambda f: self._committed(job, item, f))

    def _committed(self, job: _Job, item: Finished, fut: asyncio.Future[bool]) -> None:
        self._uncommitted -= 1
        self._commit_done.set()
        if fut.cancelled() or fut.exception() is not None:
            if not fut.cancelled():  # the ledger cannot record (a full disk): stop, and
                self.stop("store_error")  # abandon answers that could not be recorded
                for task in self._workers:
                    task.cancel()
            return  # not durable: the job stays held and is released, to be sent again
        self._held.pop(job.claimed.seq, None)
        self._maybe_over()
        if fut.result():
            self.tally.count(item)
            if self.on_result is not None:
                self.on_result(self.tally)

