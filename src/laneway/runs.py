"""The main job as a library call: ``await laneway.run("in.jsonl", "out.jsonl")``.

It ingests the input into the ledger (resuming a run already there), chooses the mode,
executes it, writes the results file in input order, and returns a :class:`Summary`.
The CLI's ``laneway run`` is a thin shell around :func:`run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from laneway.backend import choose_provider
from laneway.budget import require_prices, unpriced_models
from laneway.errors import ConfigError
from laneway.governor import Governor, RateLimits
from laneway.ingest import (
    check_same,
    default_run_id,
    file_sha256,
    fingerprint,
    ingest,
    replace_failed,
    request_options,
)
from laneway.jobs import JobDefaults, write_results
from laneway.output import check_output, clean_stale_parts
from laneway.pricing import Price
from laneway.provider import Provider, open_provider
from laneway.runname import check_run_name
from laneway.runners import hybrid
from laneway.runners.native import NativeOptions, NativeTally, run_native
from laneway.runners.planner import PlannerOptions
from laneway.runners.realtime import RealtimeOptions, RealtimeRunner, Tally
from laneway.runners.retry import RetryPolicy
from laneway.store import AsyncStore, Counts, Store, StoreSettings, open_store
from laneway.store.diskfull import disk_full_error, disk_full_errors
from laneway.store.runlock import RunLock, hold_run
from laneway.store.statuses import JobStatus, RunStatus

MODES = ("auto", "realtime", "native")


@dataclass(frozen=True)
class Progress:
    """A moment of a run, for progress bars and event streams."""

    run_id: str
    total: int
    succeeded: int
    errored: int
    in_flight: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    rate_per_s: float
    elapsed_s: float
    phase: str = "running"

    @property
    def done(self) -> int:
        return self.succeeded + self.errored

    @property
    def eta_s(self) -> float | None:
        if self.rate_per_s <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate_per_s)


@dataclass
class Summary:
    """What a run did, for the CLI's summary and for callers of :func:`run`."""

    run_id: str
    mode: str
    total: int
    succeeded: int
    errored: int
    canceled: int
    expired: int
    pending: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    wall_s: float
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    unpriced_models: list[str] = field(default_factory=list)
    utilization: dict[str, float] = field(default_factory=dict)
    stop_reason: str | None = None
    #: The one line that says why the run stopped on its own (API unreachable, key refused).
    stop_detail: str | None = None
    output_path: str | None = None
    plan: str | None = None
    realtime_cost_usd: float | None = None
    provider: str = ""

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(kw_only=True)
class RunConfig:
    """Every option of a run (the CLI flags of ``laneway run``)."""

    run_name: str | None = None
    mode: str = "auto"
    provider: str = "auto"
    defaults: JobDefaults = field(default_factory=JobDefaults)
    concurrency: int | None = None
    max_attempts: int = 6
    stream: bool = False
    timeout_s: float = 600.0
    #: Stop (jobs left pending) after this many seconds with no answer from the API.
    wait_for_api_s: float = 30.0
    budget_usd: float | None = None
    #: The price of models with no known one (``--price IN/OUT``; registered for this
    #: process with ``pricing.set_price``); with a budget and no price, such a model
    #: stops the run before anything is sent.
    price: Price | None = None
    deadline_at: float | None = None
    skip_invalid: bool = False
    db: str | Path | None = None
    limits: RateLimits | None = None
    no_work: bool = False
    #: Who claims jobs; empty: "main" on SQLite (one process), a unique id on PostgreSQL,
    #: so two `laneway run` processes on one shared ledger never release each other's jobs.
    worker_id: str = ""
    #: Native batches: limits, polling, fallback (default: NativeOptions.from_env()).
    native: NativeOptions | None = None
    #: What ``--mode auto`` assumes (latency, batch turnaround, default limits).
    planner: PlannerOptions | None = None


async def run(
    input_path: str | Path, output_path: str | Path | None = None, *,
    config: RunConfig | None = None, provider: Provider | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    stop_event: asyncio.Event | None = None, **options: Any,
) -> Summary:
    """Run every job of ``input_path`` and write ``output_path``; see :class:`RunConfig`.

    Keyword ``options`` are :class:`RunConfig` fields (``mode="realtime"``, ...).
    ``stop_event``, when set, stops the run cleanly (as Ctrl-C does).
    """
    config = config or RunConfig(**options)
    if config.mode not in MODES:
        raise ConfigError(f"--mode {config.mode!r}: choose {', '.join(MODES)}")
    if output_path is not None:  # before anything runs: never find a bad -o at the end
        check_output(output_path, input_path=input_path)
        clean_stale_parts(output_path)
    started = time.monotonic()
    notice = on_notice or (lambda _msg: None)
    store = open_store(StoreSettings.from_dsn(config.db))
    astore = AsyncStore(store)
    own_provider = provider is None
    lock: RunLock | None = None
    try:
        run_row = await astore.call(_prepare, store, Path(input_path), config)
        run_id = run_row.id
        # One process per run on SQLite: a second is refused, naming the first.
        lock = hold_run(store.settings, run_id)
        if run_row.total and run_row.ingest_done:
            notice(f"run {run_id}: {run_row.total} jobs")
        total = await astore.call(
            ingest, store, run_row, Path(input_path), defaults=config.defaults,
            skip_invalid=config.skip_invalid)
        local = provider.is_local if provider is not None else (
            choose_provider(config.provider) == "local")
        if not local:  # before anything is sent: a budget must be able to count every cost
            require_prices(await astore.call(unpriced_models, store, run_id),
                           budget_usd=config.budget_usd, price=config.price)
        if config.no_work:
            return await _summary(astore, run_id, "enqueued", started, Tally(), None)
        counts = await astore.call(store.counts, run_id)
        if counts.remaining == 0:  # finished before: nothing to send, nothing to start
            summary = await _summary(astore, run_id, run_row.mode, started, Tally(), None)
            if output_path is not None:
                summary.output_path = str(output_path)
                await _write_output_async(astore, run_id, Path(output_path))
            return summary
        if provider is None:
            provider = await asyncio.to_thread(open_provider, config.provider)
        if not store.is_postgres:
            released = await astore.call(store.release_all, run_id)
            if released:
                notice(f"run {run_id}: {released} jobs were in flight when the last process "
                       "stopped; they will be sent again")
        canceled = run_row.status == RunStatus.CANCELED
        if not canceled:
            await astore.call(store.update_run, run_id, status=RunStatus.RUNNING, mode=config.mode,
                              provider=provider.kind)
        before = await astore.call(store.counts, run_id)
        plan = None
        realtime_s = None
        mode = config.mode
        if canceled:  # laneway cancel: only collect what batches still hold
            notice(f"run {run_id} was canceled: nothing new is sent")
            mode = "native"
        elif config.mode == "auto" or config.deadline_at is not None:
            plan, realtime_s = await hybrid.plan_run(
                astore, run_id, provider, options=config.planner, limits=config.limits,
                concurrency=config.concurrency, deadline_at=config.deadline_at,
                budget_usd=config.budget_usd, worker_id=config.worker_id or "main")
            if config.mode == "auto":
                notice(plan.reason)
                mode = plan.mode
        tally: Tally
        if mode in ("native", "hybrid"):
            mode, tally = "native", await run_native(
                run_id=run_id, astore=astore, provider=provider, options=config.native,
                max_attempts=config.max_attempts, budget_usd=config.budget_usd,
                deadline_at=config.deadline_at, realtime_s=realtime_s, on_notice=notice,
                worker_id=config.worker_id or "main", stop_event=stop_event,
                on_progress=_native_progress(run_id, total, before, on_progress))
            if tally.fallback and tally.stop_reason is None:  # the deadline left these
                now = await astore.call(store.counts, run_id)
                mode, tally = "hybrid", hybrid.merge(tally, await _run_realtime(
                    run_id, astore, provider, config, now, total, on_progress, stop_event))
        else:
            tally = await _run_realtime(run_id, astore, provider, config, before, total,
                                        on_progress, stop_event)
        summary = await _summary(astore, run_id, mode, started, tally, provider)
        summary.plan = plan.reason if plan is not None and config.mode == "auto" else None
        if mode != "realtime":
            summary.realtime_cost_usd = await astore.call(
                hybrid.realtime_cost_usd, store, run_id, local=provider.is_local)
        canceled = canceled or tally.stop_reason == "canceled"
        status = (RunStatus.CANCELED if canceled else RunStatus.DONE if summary.complete
                  else RunStatus.STOPPED if tally.stop_reason else RunStatus.RUNNING)
        await astore.call(store.update_run, run_id, status=status)
        if output_path is not None:
            summary.output_path = str(output_path)
            await _write_output_async(astore, run_id, Path(output_path))
        return summary
    except Exception as exc:  # a full disk, wherever it surfaced: one line, nothing lost
        full = disk_full_error(exc, f"the ledger {store.settings} cannot be written")
        if full is None:
            raise
        raise full from exc
    finally:
        if own_provider and provider is not None:
            await provider.aclose()
        astore.close()
        store.close()
        if lock is not None:
            lock.release()


def _prepare(store: Store, path: Path, config: RunConfig) -> Any:
    digest = file_sha256(path)
    fp = fingerprint(digest, config.defaults)
    run_id = check_run_name(config.run_name) if config.run_name else default_run_id(path, fp)
    options = {**request_options(config.defaults), "input_sha256": digest}
    replace_failed(store, run_id=run_id, fingerprint=fp, input_path=str(path.resolve()))
    existing = store.get_run(run_id)
    if existing is not None:
        check_same(existing, fp, options, digest)
        return existing
    return store.create_run(
        run_id=run_id, fingerprint=fp, options=options, mode=config.mode,
        provider=config.provider, input_path=str(path.resolve()), input_sha256=digest,
        budget_usd=config.budget_usd, deadline_at=config.deadline_at)


async def _run_realtime(
    run_id: str, astore: AsyncStore, provider: Provider, config: RunConfig, before: Counts,
    total: int, on_progress: Callable[[Progress], None] | None,
    stop_event: asyncio.Event | None,
) -> Tally:
    # No person waits on this process's governor, so no share of the limit is kept
    # free for one: on a drained bucket that share alone cost 6 s of a 40 s run.
    governor = Governor(limits=config.limits, interactive_reserve=0.0)
    options = RealtimeOptions(
        concurrency=config.concurrency, retry=RetryPolicy(max_attempts=config.max_attempts),
        timeout_s=config.timeout_s, wait_for_api_s=config.wait_for_api_s,
        stream=config.stream, budget_usd=config.budget_usd,
        worker_id=config.worker_id or _default_worker_id(astore))
    runner = RealtimeRunner(run_id=run_id, astore=astore, provider=provider,
                            governor=governor, options=options, spent_usd=before.cost_usd)

    def progress(phase: str = "running") -> Progress:
        t = runner.tally
        elapsed = time.monotonic() - t.started_at
        return Progress(
            run_id=run_id, total=total, succeeded=before[JobStatus.SUCCEEDED] + t.succeeded,
            errored=before[JobStatus.ERRORED] + t.errored, in_flight=t.in_flight,
            input_tokens=before.input_tokens + t.input_tokens,
            output_tokens=before.output_tokens + t.output_tokens,
            cost_usd=before.cost_usd + t.cost_usd,
            rate_per_s=t.done / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed,
            phase=phase)

    async def ticker() -> None:
        last_event = 0.0
        while True:
            await asyncio.sleep(0.1)
            p = progress()
            if on_progress is not None:
                on_progress(p)
            if time.monotonic() - last_event >= 1.0:
                last_event = time.monotonic()
                data = {**asdict(p), "governor": governor.snapshot()}
                await astore.call(astore.store.add_event, run_id, "progress", data)

    async def watch_stop() -> None:
        assert stop_event is not None
        await stop_event.wait()
        runner.stop("interrupted")

    tasks = [asyncio.create_task(ticker())]
    if stop_event is not None:
        tasks.append(asyncio.create_task(watch_stop()))
    try:
        tally = await runner.run()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
    final = progress("done")
    if on_progress is not None:
        on_progress(final)
    data = {**asdict(final), "governor": governor.snapshot(),
            "history": list(governor.history)[-200:]}
    await astore.call(astore.store.add_event, run_id, "progress", data)
    elapsed = time.monotonic() - tally.started_at
    tally_util: dict[str, float] = {}
    for model in governor.models:
        for kind, share in governor.utilization(model, elapsed_s=elapsed).items():
            tally_util[f"{model}:{kind}"] = round(share, 4)
    tally.utilization = tally_util
    return tally


async def _summary(astore: AsyncStore, run_id: str, mode: str, started: float, tally: Tally,
                   provider: Provider | None) -> Summary:
    store = astore.store
    counts = await astore.call(store.counts, run_id)
    unpriced = await astore.call(store.unpriced_models, run_id)
    return Summary(
        run_id=run_id, mode=mode, total=counts.total, succeeded=counts[JobStatus.SUCCEEDED],
        errored=counts[JobStatus.ERRORED], canceled=counts[JobStatus.CANCELED],
        expired=counts[JobStatus.EXPIRED],
        pending=counts.remaining, input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens, cost_usd=counts.cost_usd,
        wall_s=time.monotonic() - started, requests=tally.requests, retries=tally.retries,
        rate_limited=tally.rate_limited, unpriced_models=unpriced,
        utilization=tally.utilization, stop_reason=tally.stop_reason,
        stop_detail=tally.stop_detail,
        provider=provider.description if provider else "",
    )


def _native_progress(run_id: str, total: int, before: Counts,
                     on_progress: Callable[[Progress], None] | None,
                     ) -> Callable[[NativeTally], None] | None:
    if on_progress is None:
        return None
    callback = on_progress

    def emit(t: NativeTally) -> None:
        elapsed = time.monotonic() - t.started_at
        callback(Progress(
            run_id=run_id, total=total, succeeded=before[JobStatus.SUCCEEDED] + t.succeeded,
            errored=before[JobStatus.ERRORED] + t.errored, in_flight=t.in_flight,
            input_tokens=before.input_tokens + t.input_tokens,
            output_tokens=before.output_tokens + t.output_tokens,
            cost_usd=before.cost_usd + t.cost_usd,
            rate_per_s=t.done / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed,
            phase="native"))

    return emit


async def _write_output_async(astore: AsyncStore, run_id: str, path: Path) -> None:
    with disk_full_errors(f"cannot write {path}"):
        await astore.call(_write_output, astore.store, run_id, path)


def _write_output(store: Store, run_id: str, path: Path) -> None:
    """Write the results file, unless the one there is already up to date."""
    run_row = store.get_run(run_id)
    if (run_row is not None and run_row.output_path == str(path.resolve())
            and run_row.output_written_at is not None and path.exists()
            and os.path.getmtime(path) >= run_row.output_written_at - 1
            and store.last_change(run_id) <= run_row.output_written_at):
        return
    if not write_results(path, store.iter_results(run_id), if_any=True):
        return  # no results yet: an existing file there is left as it is
    store.update_run(run_id, output_path=str(path.resolve()), output_written_at=time.time())


def results_of(run_id: str, *, db: str | Path | None = None) -> list[tuple[str, dict[str, Any]]]:
    """Every result of a finished run, in input order (small runs; see Store.iter_results)."""
    store = open_store(StoreSettings.from_dsn(db))
    try:
        if store.get_run(run_id) is None:
            raise ConfigError(f"no run named {run_id!r} in {store.settings}")
        return list(store.iter_results(run_id))
    finally:
        store.close()


def _default_worker_id(astore: AsyncStore) -> str:
    if not astore.store.is_postgres:
        return "main"
    from laneway.workers import new_worker_id

    return new_worker_id()
