"""Statuses: typed, stored as the same strings as before, one meaning of closed and ended."""

from __future__ import annotations

from sqlalchemy import select

from laneway.store import Store
from laneway.store import schema as S
from laneway.store.statuses import (
    CLOSED_RUNS,
    ENDED_RUNS,
    FINAL_JOBS,
    BatchStatus,
    JobStatus,
    RunStatus,
)

from .helpers import done, make_run


def test_the_values_are_the_strings_ledgers_already_hold() -> None:
    assert [s.value for s in RunStatus] == [
        "ingesting", "ingest_failed", "ready", "running", "stopped", "failed", "done",
        "canceled"]
    assert [s.value for s in JobStatus] == [
        "pending", "claimed", "submitted", "succeeded", "errored", "canceled", "expired"]
    assert [s.value for s in BatchStatus] == [
        "submitting", "submitted", "canceling", "ended", "lost"]
    assert [s for s in JobStatus if s.final] == list(FINAL_JOBS)


def test_closed_is_never_worked_on_again_and_ended_is_at_rest() -> None:
    assert {s for s in RunStatus if s.closed} == {RunStatus.DONE, RunStatus.CANCELED}
    assert {s for s in RunStatus if s.ended} == {
        RunStatus.DONE, RunStatus.CANCELED, RunStatus.STOPPED, RunStatus.FAILED,
        RunStatus.INGEST_FAILED}
    assert set(CLOSED_RUNS) < set(ENDED_RUNS)


def test_rows_read_as_statuses_and_workers_skip_only_closed_runs(store: Store) -> None:
    for status in RunStatus:
        make_run(store, status.value, n=1)
        store.update_run(status.value, status=status)
    store.finish([done(RunStatus.DONE.value, 0)])
    with store.engine.connect() as conn:  # stored as the plain strings
        stored = dict(conn.execute(select(S.runs.c.id, S.runs.c.status)).all())
        job = conn.scalar(select(S.jobs.c.status).where(S.jobs.c.run_id == "done"))
    assert stored == {s.value: s.value for s in RunStatus} and job == "succeeded"
    run = store.get_run("stopped")
    assert run is not None and type(run.status) is RunStatus and run.status.ended
    assert {r.id for r in store.open_runs()} == {
        s.value for s in RunStatus if s not in CLOSED_RUNS}
