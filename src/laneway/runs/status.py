"""A run's status, written here and nowhere else (``store/`` keeps the SQL).

Each transition of a run's life is one function, named for what happened:

- ingest: :func:`ingested` (``ready``, its job count known) or :func:`ingest_failed`;
- taken up: :func:`started` (``running``, its mode and provider), :func:`mode_chosen`
  (``--mode auto`` decided, or batches unavailable: realtime);
- ended: :func:`ended` (the status :func:`final_status` says), :func:`done`,
  :func:`stopped` (its budget spent, in a worker);
- :func:`canceled` (``laneway cancel``: see :mod:`laneway.runs.cancel`).

Callers outside :mod:`laneway.runs` never set a run's status.
"""

from __future__ import annotations

from laneway.store import AsyncStore, Store
from laneway.store.statuses import RunStatus


def ingested(store: Store, run_id: str, total: int) -> None:
    """Every line of the input is in the run: it is ``ready`` with ``total`` jobs."""
    store.update_run(run_id, ingest_done=True, total=total, status=RunStatus.READY, note=None)


def ingest_failed(store: Store, run_id: str, note: str) -> None:
    """The input has a bad line: the run waits for a fixed input (``note`` says why)."""
    store.update_run(run_id, status=RunStatus.INGEST_FAILED, note=note)


async def started(astore: AsyncStore, run_id: str, *, mode: str,
                  provider: str | None = None) -> None:
    """This process carries the run out now (in ``mode``, on ``provider``)."""
    await astore.set_run_status(run_id, RunStatus.RUNNING, mode=mode, provider=provider)


async def mode_chosen(astore: AsyncStore, run_id: str, mode: str) -> None:
    """The mode the run goes on in (the planner's choice, or realtime with no batches)."""
    await astore.set_run_status(run_id, RunStatus.RUNNING, mode=mode)


async def ended(astore: AsyncStore, run_id: str, status: RunStatus, *,
                mode: str | None = None) -> None:
    """The run's runner returned: ``status`` is :func:`final_status`'s (``mode``: the
    one that ran, when it differs from the one chosen)."""
    await astore.set_run_status(run_id, status, mode=mode)


async def done(astore: AsyncStore, run_id: str) -> None:
    """Every job of the run is final."""
    await astore.set_run_status(run_id, RunStatus.DONE)


async def stopped(astore: AsyncStore, run_id: str) -> None:
    """The run stopped short (its budget would be exceeded): jobs stay pending."""
    await astore.set_run_status(run_id, RunStatus.STOPPED)


async def canceled(astore: AsyncStore, run_id: str) -> None:
    """The run is canceled for good: nothing new is sent for it, by any process."""
    await astore.set_run_status(run_id, RunStatus.CANCELED)


def final_status(*, complete: bool, canceled: bool, stop_reason: str | None,
                 unfinished: RunStatus = RunStatus.RUNNING) -> RunStatus:
    """A run's status once its runner returned: ``canceled`` (``laneway cancel``, even if
    every job is final by then), ``done``, ``stopped`` (a stop reason: interrupted, budget,
    API unreachable...), else ``unfinished`` (jobs left pending for another process)."""
    if canceled:
        return RunStatus.CANCELED
    if complete:
        return RunStatus.DONE
    return RunStatus.STOPPED if stop_reason else unfinished
