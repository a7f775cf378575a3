"""The durable ledger: runs, jobs, native batches and events, in SQLite or PostgreSQL."""

from __future__ import annotations

from laneway.store.ledger import ClaimedJob, Counts, Finished, RunRow, Store, open_store
from laneway.store.settings import StoreSettings
from laneway.store.writer import AsyncStore, GroupWriter

__all__ = [
    "AsyncStore",
    "ClaimedJob",
    "Counts",
    "Finished",
    "GroupWriter",
    "RunRow",
    "Store",
    "StoreSettings",
    "open_store",
]
