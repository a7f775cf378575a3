"""The durable ledger: runs, jobs, native batches, events, and the gateway's client keys
and traffic, in SQLite or PostgreSQL."""

from __future__ import annotations

from laneway.store.batches import BatchRow
from laneway.store.keys import ClientKey
from laneway.store.ledger import Counts, RunRow, Store, open_store
from laneway.store.queue import ClaimedJob, Finished
from laneway.store.settings import StoreSettings
from laneway.store.statuses import BatchStatus, JobStatus, RunStatus
from laneway.store.traffic import TrafficRecord
from laneway.store.writer import AsyncStore, GroupWriter

__all__ = [
    "AsyncStore",
    "BatchRow",
    "BatchStatus",
    "ClaimedJob",
    "ClientKey",
    "Counts",
    "Finished",
    "GroupWriter",
    "JobStatus",
    "RunRow",
    "RunStatus",
    "Store",
    "StoreSettings",
    "TrafficRecord",
    "open_store",
]
