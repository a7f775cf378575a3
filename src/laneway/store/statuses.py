"""Every status the ledger records, in one place: a run's, a job's and a batch row's.

Each is a :class:`~enum.StrEnum` whose values are the strings stored in the ``status``
columns, so a member compares equal to (and is written as) the plain string and a
ledger written before these types existed reads the same.

Two questions are asked of a run's status, and they have different answers:

- **closed** (:attr:`RunStatus.closed`, :data:`CLOSED_RUNS`): the run is never worked
  on again. ``done`` and ``canceled``. A worker looking for work skips it; anything
  else (``stopped``, ``failed``, a run still ``ready``) is resumed by the next worker
  or by the same command run again.
- **ended** (:attr:`RunStatus.ended`, :data:`ENDED_RUNS`): nothing is working on the
  run now, so a view of it stops waiting for progress (its event stream ends, nothing
  is in flight). The closed statuses, plus ``stopped``, ``failed`` and
  ``ingest_failed``: a run that may be resumed later but is at rest.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """``runs.status``, in the order a run usually goes through them."""

    #: Its input is being read into the ledger (a new run starts so).
    INGESTING = "ingesting"
    #: Its ingest stopped at a bad line: nothing of it is claimed or sent until the
    #: same command, on a fixed input, resumes or replaces it.
    INGEST_FAILED = "ingest_failed"
    #: Every line is in the ledger; nothing has been sent yet.
    READY = "ready"
    #: A process is sending its jobs.
    RUNNING = "running"
    #: Its process stopped before every job was final (a signal, a budget, a deadline).
    STOPPED = "stopped"
    #: Its process failed with an error; resumable like ``stopped``.
    FAILED = "failed"
    #: Every job is final.
    DONE = "done"
    #: Canceled by a person: jobs not sent were recorded as ``canceled``.
    CANCELED = "canceled"

    @property
    def closed(self) -> bool:
        """Never worked on again (see the module's docstring)."""
        return self in CLOSED_RUNS

    @property
    def ended(self) -> bool:
        """Nothing works on it now, though it may be resumed (see the module's docstring)."""
        return self in ENDED_RUNS


#: Run statuses after which no worker joins the run.
CLOSED_RUNS: tuple[RunStatus, ...] = (RunStatus.DONE, RunStatus.CANCELED)
#: Run statuses at rest: nothing works on the run now.
ENDED_RUNS: tuple[RunStatus, ...] = (
    *CLOSED_RUNS, RunStatus.STOPPED, RunStatus.FAILED, RunStatus.INGEST_FAILED)


class JobStatus(StrEnum):
    """``jobs.status``. Only the first three change again; the rest are final."""

    #: Waits to be sent.
    PENDING = "pending"
    #: Held by a worker under a lease.
    CLAIMED = "claimed"
    #: Inside a native batch, waiting for its result.
    SUBMITTED = "submitted"
    SUCCEEDED = "succeeded"
    ERRORED = "errored"
    CANCELED = "canceled"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        """Its outcome is recorded; nothing changes it again."""
        return self in FINAL_JOBS


#: Job statuses that are final.
FINAL_JOBS: tuple[JobStatus, ...] = (
    JobStatus.SUCCEEDED, JobStatus.ERRORED, JobStatus.CANCELED, JobStatus.EXPIRED)


class BatchStatus(StrEnum):
    """``batches.status``: the life of one native batch row (see :mod:`laneway.store.batches`)."""

    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    CANCELING = "canceling"
    ENDED = "ended"
    LOST = "lost"


#: Batch rows whose batch may still be running at the provider.
ACTIVE_BATCHES: tuple[BatchStatus, ...] = (
    BatchStatus.SUBMITTING, BatchStatus.SUBMITTED, BatchStatus.CANCELING)
