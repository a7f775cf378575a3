"""The durable ledger: runs, jobs, native batches and events, in SQLite or PostgreSQL."""

from __future__ import annotations

from laneway.store.batches import BatchRow
from laneway.store.ledger import Counts, RunRow, Store, open_store
from laneway.store.queue import ClaimedJob, Finished
from laneway.store.settings import StoreSettings
from laneway.store.statuses import BatchStatus, JobStatus, RunStatus
from laneway.store.writer import AsyncStore, GroupWriter

__all__ = [
    "AsyncStore",
    "BatchRow",
    "BatchStatus",
    "ClaimedJob",
    "Counts",
    "Finished",
    "GroupWriter",
    "JobStatus",
    "RunRow",
    "RunStatus",
    "Store",
    "StoreSettings",
    "open_store",
]
