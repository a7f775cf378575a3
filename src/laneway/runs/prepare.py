"""A run's identity and row (:func:`prepare`), then taking it up (:func:`take_up`):
the run's lock, its ingest, and the claims a process that died left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from laneway.runs.config import RunConfig
from laneway.runs.ingest import (
    check_same,
    default_run_id,
    file_sha256,
    fingerprint,
    ingest,
    replace_failed,
    request_options,
)
from laneway.runs.names import check_run_name
from laneway.store import AsyncStore, RunRow, Store
from laneway.store.runlock import RunLock, hold_run


def prepare(store: Store, path: Path, config: RunConfig) -> RunRow:
    """The run of ``path`` under ``config``: resumed if the ledger has it (its input and
    options must be the same), created otherwise. Nothing is ingested yet."""
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


async def take_up(
    astore: AsyncStore, run_row: RunRow, path: Path, config: RunConfig, *,
    notice: Callable[[str], None] | None = None,
) -> tuple[int, RunLock | None]:
    """Hold the run (one process per run on SQLite: a second is refused, naming the
    first), ingest what is not yet in the ledger, and give back the claims (of jobs and
    of native batches) a stopped process left (on SQLite all of them; on PostgreSQL
    those of this host's processes that are gone, see :mod:`laneway.store.holders`:
    other hosts' wait for their leases).

    Returns the run's job count and the lock, which the caller releases when the run
    ends; on an error the lock is released here.
    """
    store = astore.store
    lock = hold_run(store.settings, run_row.id)
    if notice is not None and run_row.total and run_row.ingest_done:
        notice(f"run {run_row.id}: {run_row.total} jobs")
    try:
        total: int = await astore.call(
            ingest, store, run_row, path, defaults=config.defaults,
            skip_invalid=config.skip_invalid)
        if not store.is_postgres:
            await astore.call(store.release_batches, run_row.id)
            released = await astore.release_all(run_row.id)
        else:  # only what processes of this host that are gone held
            released = (await astore.call(store.reap_gone_holders)).jobs
        await astore.call(store.recount_run, run_row.id)  # if nothing of it is in flight
        if released and notice is not None:
            notice(f"run {run_row.id}: {released} jobs were in flight when the last "
                   "process stopped; they will be sent again")
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return total, lock
