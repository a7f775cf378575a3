"""The runs this process carries out in the background, each a :class:`~.session.RunSession`
kept as a task: ``HybridAgent.submit`` and the gateway's Message Batches start them here.

:meth:`BackgroundRuns.start` takes a run up (:func:`~.prepare.prepare`,
:func:`~.prepare.take_up`), begins it and keeps its work as a task, with a follower of a
cancel recorded by another process (:func:`~.follow.follow_cancel`);
:meth:`BackgroundRuns.stop_live` is what a cancel (:mod:`.cancel`) stops here;
:meth:`BackgroundRuns.aclose` stops them all (their jobs not finished stay pending).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from laneway.errors import ConfigError, InputError
from laneway.governor.core import Governor
from laneway.jobs.formats import JobDefaults, read_jobs
from laneway.provider.client import Provider
from laneway.runs.cancel import cancel
from laneway.runs.config import RunConfig
from laneway.runs.execute import Execution
from laneway.runs.follow import follow_cancel
from laneway.runs.prepare import prepare, take_up
from laneway.runs.session import RunSession
from laneway.runs.watch import RunWatch
from laneway.store import AsyncStore
from laneway.store.leases import new_worker_id
from laneway.store.statuses import RunStatus

log = logging.getLogger("laneway.agent")
#: How a background run may be carried out (``--mode auto`` is planned by its caller).
MODES = ("realtime", "native", "hybrid")


@dataclass
class _Live:
    """A run this process is executing."""

    session: RunSession
    task: asyncio.Task[None] | None = None
    follower: asyncio.Task[None] | None = None

    @property
    def stop(self) -> asyncio.Event:
        stop = self.session.ex.stop_event
        assert stop is not None
        return stop


class BackgroundRuns:
    """The background runs of one process, on one ledger, provider and governor."""

    def __init__(self, astore: AsyncStore, provider: Provider, governor: Governor, *,
                 concurrency: int | None = None, max_attempts: int = 6,
                 event_every_s: float = 1.0) -> None:
        self.astore = astore
        self.provider = provider
        self.governor = governor
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.event_every_s = event_every_s
        self._live: dict[str, _Live] = {}

    def config(self, *, run_name: str | None, mode: str, defaults: JobDefaults,
               deadline_at: float | None = None) -> RunConfig:
        """A run's options, carried out here (its claims under an id of its own);
        ``ConfigError`` for a mode not in :data:`MODES`."""
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r}: choose {', '.join(MODES)}")
        return RunConfig(run_name=run_name, mode=mode, defaults=defaults,
                         concurrency=self.concurrency, max_attempts=self.max_attempts,
                         worker_id=new_worker_id("agent-"), deadline_at=deadline_at)

    async def start(self, path: Path, config: RunConfig, *,
                    on_no_batches: Callable[[str], Awaitable[bool]] | None = None) -> str:
        """Start (or resume) the run of ``path`` under ``config`` (its ``mode``:
        ``realtime``, ``native`` or ``hybrid``); returns its run id at once. A canceled
        run only collects what its batches still hold."""
        await asyncio.to_thread(check_input, path, config.defaults)
        run_row = await self.astore.call(prepare, self.astore.store, path, config)
        run_id: str = run_row.id
        if run_id in self._live:
            return run_id
        total, lock = await take_up(self.astore, run_row, path, config)
        ex = Execution(run_id=run_id, astore=self.astore, provider=self.provider,
                       config=config, total=total, notice=log.info, governor=self.governor,
                       stop_event=asyncio.Event(), on_no_batches=on_no_batches)
        session = RunSession(ex=ex, lock=lock,
                             canceled_before=run_row.status == RunStatus.CANCELED)
        if not await session.begin(config.mode, event_every_s=self.event_every_s):
            return run_id
        live = _Live(session)
        live.task = asyncio.create_task(self._execute(live), name=f"laneway-run-{run_id}")
        live.follower = asyncio.create_task(follow_cancel(  # a cancel by another process
            self.astore, run_id, stop=live.stop, cancel=self.cancel,
            done=lambda: session.canceled or live.task is None or live.task.done()))
        self._live[run_id] = live
        return run_id

    async def _execute(self, live: _Live) -> None:
        try:
            await live.session.work()
        finally:
            self._live.pop(live.session.run_id, None)

    def is_live(self, run_id: str) -> bool:
        return run_id in self._live

    def watch(self, run_id: str) -> RunWatch | None:
        """The live progress of a realtime run carried out here (None otherwise)."""
        live = self._live.get(run_id)
        return None if live is None else live.session.watch

    async def wait(self, run_id: str, *, timeout_s: float | None = None) -> None:
        """Wait until this process's run of ``run_id`` ends (at once if it is not running)."""
        live = self._live.get(run_id)
        if live is not None and live.task is not None:
            await asyncio.wait_for(asyncio.shield(live.task), timeout=timeout_s)

    async def cancel(self, run_id: str) -> int:
        """Stop a run for good (see :mod:`.cancel`; its batches at the provider are left
        as they are); returns the number of jobs canceled."""
        return (await cancel(run_id, astore=self.astore, stop_live=self.stop_live)).canceled

    async def stop_live(self, run_id: str) -> None:
        """Stop this process's work on ``run_id`` for a cancel: requests in flight are
        abandoned, the jobs it held given back (see :mod:`.cancel`)."""
        live = self._live.get(run_id)
        if live is not None and live.task is not None:
            live.session.canceled = True
            await _abandon(live.task, live.session)

    async def aclose(self, grace_s: float) -> None:
        """Stop every run (jobs not finished stay pending in the ledger): requests in
        flight get ``grace_s`` to finish (they are paid for), then are abandoned;
        nothing new is sent meanwhile."""
        for live in list(self._live.values()):
            live.stop.set()
            if live.session.watch is not None:
                live.session.watch.runner.stop("shutdown")
        for live in list(self._live.values()):
            if live.task is None:
                continue
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(live.task), timeout=grace_s)
            await _abandon(live.task, live.session)


async def _abandon(task: asyncio.Task[None], session: RunSession) -> None:
    """Cancel ``task`` and wait for it. Cancelled again until it ends (a cancellation
    can be swallowed by ``asyncio.wait_for`` on Python 3.11 when its inner await
    finishes at the same moment), unless its session is ending: a run's end (its status, its
    claims given back) is waited for, not interrupted, so what it gives back is settled
    before a cancel cancels what is left."""
    while not task.done():
        if not session.ending:
            task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


def check_input(path: Path, defaults: JobDefaults) -> int:
    """Read every line once before a run is created, so a bad input (a bad line, a
    duplicate id) is refused whole rather than leaving a half-ingested run behind."""
    seen: dict[str, int] = {}
    for job in read_jobs(path, defaults=defaults):
        first = seen.setdefault(job.custom_id, job.line)
        if first != job.line:
            raise InputError(f"duplicate id {job.custom_id!r} (first on line {first})",
                             path=path, line=job.line, field="custom_id")
    if not seen:
        raise InputError("no jobs: the file is empty (or has only blank lines)", path=path)
    return len(seen)
