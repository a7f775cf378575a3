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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from laneway.cost.budget import require_prices, unpriced_models
from laneway.cost.prices import NO_PRICES
from laneway.errors import ConfigError
from laneway.jobs.formats import write_results
from laneway.jobs.output import check_output, clean_stale_parts
from laneway.provider.backend import choose_provider, open_provider
from laneway.provider.client import Provider
from laneway.runners.tally import Tally
from laneway.runs import plan as planning
from laneway.runs.config import MODES, RunConfig
from laneway.runs.execute import Execution
from laneway.runs.prepare import prepare, take_up
from laneway.runs.progress import Progress
from laneway.runs.session import RunSession
from laneway.store import AsyncStore, Store, StoreSettings, open_store
from laneway.store.diskfull import disk_full_error, disk_full_errors
from laneway.store.runlock import RunLock
from laneway.store.statuses import JobStatus, RunStatus


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
    #: Per model asked for and model that answered: ``asked``, ``answered``, ``jobs``,
    #: ``cost_usd`` and ``asked_cost_usd`` (what the asked model would have cost, when
    #: another answered).
    models: list[dict[str, Any]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.pending == 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    # Options given beside a config change that config (never dropped in silence).
    config = replace(config, **options) if config else RunConfig(**options)
    _check_first(config, input_path, output_path)
    started = time.monotonic()
    notice = on_notice or (lambda _msg: None)
    store = open_store(StoreSettings.from_dsn(config.db))
    astore = AsyncStore(store)
    own_provider = provider is None
    lock: RunLock | None = None
    try:
        run_row = await astore.call(prepare, store, Path(input_path), config)
        run_id = run_row.id
        total, lock = await take_up(astore, run_row, Path(input_path), config, notice=notice)
        local = provider.is_local if provider is not None else (
            choose_provider(config.provider) == "local")
        prices = NO_PRICES
        if not local:  # before anything is sent: a budget must be able to count every cost
            prices = require_prices(await astore.call(unpriced_models, store, run_id),
                                    budget_usd=config.budget_usd, price=config.price)
        if config.no_work:
            return await _summary(astore, run_id, "enqueued", started, Tally(), None)
        counts = await astore.counts(run_id)
        if counts.remaining == 0:  # finished before: nothing to send, nothing to start
            notice(f"nothing to send: all {counts.total} jobs of run {run_id} finished")
            summary = await _summary(astore, run_id, run_row.mode, started, Tally(), None)
        else:
            if provider is None:
                provider = await asyncio.to_thread(open_provider, config.provider)
            summary = await _carry_out(Execution(
                run_id=run_id, astore=astore, provider=provider, config=config, total=total,
                notice=notice, on_progress=on_progress, stop_event=stop_event, prices=prices),
                canceled=run_row.status == RunStatus.CANCELED, started=started)
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
        await _close(astore, lock)


async def _close(astore: AsyncStore, lock: RunLock | None) -> None:
    """The end of a run's process: its ``holders`` rows given back (the next process
    need not judge it gone), the ledger closed, the run's lock released."""
    with contextlib.suppress(Exception):
        await astore.call(astore.store.drop_held)
    astore.close()
    astore.store.close()
    if lock is not None:
        lock.release()


def _check_first(config: RunConfig, input_path: str | Path,
                 output_path: str | Path | None) -> None:
    """What is checked before anything runs: the mode, and the output path."""
    if config.mode not in MODES:
        raise ConfigError(f"--mode {config.mode!r}: choose {', '.join(MODES)}")
    if output_path is not None:  # before anything runs: never find a bad -o at the end
        check_output(output_path, input_path=input_path)
        clean_stale_parts(output_path)


async def _carry_out(ex: Execution, *, canceled: bool, started: float) -> Summary:
    """The run carried out (:meth:`RunSession.carry_out`), and its summary."""
    session = RunSession(ex=ex, lock=None, canceled_before=canceled)
    mode, tally, plan = await session.carry_out()
    summary = await _summary(ex.astore, ex.run_id, mode, started, tally, ex.provider)
    summary.plan = plan.reason if plan is not None and ex.config.mode == "auto" else None
    if mode != "realtime":
        summary.realtime_cost_usd = await ex.astore.call(
            planning.realtime_cost_usd, ex.astore.store, ex.run_id,
            local=ex.provider.costs_nothing, prices=ex.prices)
    return summary


async def _summary(astore: AsyncStore, run_id: str, mode: str, started: float, tally: Tally,
                   provider: Provider | None) -> Summary:
    counts = await astore.counts(run_id)
    unpriced = await astore.unpriced_models(run_id)
    models = [asdict(m) for m in await astore.answered_models(run_id)]
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
        provider=provider.description if provider else "", models=models,
    )


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
