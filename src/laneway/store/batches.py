"""Native batches in the ledger, coordinated between workers so each chunk is sent once.

The lifecycle, for a worker ``w`` (any number of workers may run it at once):

1. ``claim`` jobs as for realtime (``FOR UPDATE SKIP LOCKED``, under a lease) and build
   a chunk from them within the provider's limits.
2. :meth:`BatchLedger.begin_batch` records the submission *before* ``create`` and moves
   the chunk's jobs to ``submitted`` in one transaction, but only if ``w`` still holds
   every one of them (False means a lease ran out and someone else may have them: drop
   the chunk and claim again). Submitted jobs are no longer claimable, so no other
   worker can send them while ``create`` is in flight. The batch row gets a lease.
3. :meth:`BatchLedger.batch_created` records the provider's ``msgbatch_`` id as soon as
   ``create`` returns (always, even if the lease was lost: an id is never forgotten).
   :meth:`BatchLedger.abort_batch` gives the jobs back if ``create`` failed for sure.
4. Polling and result streaming are owned through :meth:`BatchLedger.claim_batches`,
   a lease on batch rows (``SKIP LOCKED`` again): one worker polls a batch; if it dies,
   another takes the batch over when the lease runs out. A taken-over batch still in
   ``submitting`` means its submitter died during ``create``: the new owner must find
   out from the provider whether it exists before sending its jobs again.
5. Results go through :meth:`~laneway.store.queue.JobQueue.finish` (``mode="native"``),
   which records each job once.

:meth:`BatchLedger.try_lock` is a plain named lock for anything else that needs one
worker at a time (PostgreSQL advisory lock; released if the worker dies).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, or_, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from laneway.store import schema as S
from laneway.store.queue import lease_clock, run_once

#: Batch statuses after which nobody needs to own the batch.
BATCH_DONE = ("ended", "failed", "canceled", "lost")

_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    run_id: str
    provider_batch_id: str | None
    status: str
    request_count: int
    bytes: int
    created_at: float
    submitted_at: float | None
    ended_at: float | None
    counts: str | None
    claimed_by: str | None
    lease_until: float | None


def _batch_row(row: Any) -> BatchRow:
    return BatchRow(**{f: row[f] for f in BatchRow.__slots__})


def lock_key(name: str) -> int:
    """The 64-bit advisory-lock key of a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class BatchLedger:
    """Native batch bookkeeping; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    @contextlib.contextmanager
    def try_lock(self, name: str) -> Iterator[bool]:
        """Hold the lock ``name`` for the ``with`` block if nobody holds it; yields whether
        it was taken (never waits). On PostgreSQL it is an advisory lock shared by every
        worker and released when the block ends or the worker's connection dies; on
        SQLite (one process) a lock within this process.
        """
        if self.engine.dialect.name != "postgresql":
            with _local_guard:
                lock = _local_locks.setdefault(name, threading.Lock())
            got = lock.acquire(blocking=False)
            try:
                yield got
            finally:
                if got:
                    lock.release()
            return
        key = lock_key(name)
        conn = self.engine.connect()
        try:
            got = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    try:
                        conn.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                        conn.commit()
                    except Exception:
                        conn.invalidate()  # closing the session drops the lock
                        raise
        finally:
            conn.close()

    def begin_batch(self, run_id: str, *, batch_id: str, seqs: Sequence[int], worker: str,
                    size_bytes: int, lease_s: float) -> bool:
        """Record a submission before ``create``; False (nothing changed) if ``worker`` no
        longer holds every job of ``seqs``."""
        j = S.jobs.c
        now = time.time()
        with self.engine.begin() as conn:
            moved = 0
            for start in range(0, len(seqs), 1000):
                res = conn.execute(update(S.jobs).where(
                    j.run_id == run_id, j.seq.in_(list(seqs[start:start + 1000])),
                    j.status == S.CLAIMED, j.claimed_by == worker,
                ).values(status=S.SUBMITTED, batch_id=batch_id, lease_until=None,
                         updated_at=now))
                moved += int(res.rowcount or 0)
            if moved != len(set(seqs)):
                conn.rollback()
                return False
            conn.execute(S.batches.insert().values(
                id=batch_id, run_id=run_id, status="submitting", request_count=len(seqs),
                bytes=size_bytes, created_at=now, claimed_by=worker,
                lease_until=lease_clock(self.engine) + lease_s))
        return True

    def batch_created(self, batch_id: str, *, provider_batch_id: str, worker: str) -> bool:
        """Record the provider's id for the batch; True if ``worker`` still owns it."""
        with self.engine.begin() as conn:
            owner = conn.scalar(select(S.batches.c.claimed_by).where(
                S.batches.c.id == batch_id))
            conn.execute(update(S.batches).where(S.batches.c.id == batch_id).values(
                provider_batch_id=provider_batch_id, status="submitted",
                submitted_at=time.time()))
        return owner == worker

    def abort_batch(self, batch_id: str, *, status: str = "failed") -> int:
        """``create`` surely failed: the batch's unfinished jobs become pending again."""
        j = S.jobs.c
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                j.batch_id == batch_id, j.status == S.SUBMITTED,
            ).values(status=S.PENDING, batch_id=None, claimed_by=None, lease_until=None,
                     updated_at=time.time()))
            conn.execute(update(S.batches).where(S.batches.c.id == batch_id).values(
                status=status, ended_at=time.time(), claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    def claim_batches(self, run_id: str, *, worker: str, lease_s: float,
                      limit: int = 100) -> list[BatchRow]:
        """Own the run's unfinished batches nobody else owns (or whose owner's lease ran
        out, or that ``worker`` already owns), renewing the lease on each."""
        b = S.batches.c
        now = lease_clock(self.engine)
        free = or_(b.claimed_by.is_(None), b.claimed_by == worker, b.lease_until < now)
        pick = (select(b.id).where(b.run_id == run_id, b.status.not_in(BATCH_DONE), free)
                .order_by(b.created_at).limit(limit))
        if self.engine.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        picked = run_once(pick, "picked", postgres=self.engine.dialect.name == "postgresql")
        stmt = (update(S.batches).where(b.id == picked.c.id)
                .values(claimed_by=worker, lease_until=now + lease_s)
                .returning(*S.batches.c))
        with self.engine.begin() as conn:
            rows = conn.execute(stmt).mappings().all()
        return sorted((_batch_row(r) for r in rows), key=lambda r: r.created_at)

    def extend_batch_lease(self, batch_ids: Sequence[str], *, worker: str,
                           lease_s: float) -> int:
        if not batch_ids:
            return 0
        with self.engine.begin() as conn:
            res = conn.execute(update(S.batches).where(
                S.batches.c.id.in_(list(batch_ids)), S.batches.c.claimed_by == worker,
            ).values(lease_until=lease_clock(self.engine) + lease_s))
        return int(res.rowcount or 0)

    def update_batch(self, batch_id: str, *, worker: str | None = None,
                     **values: Any) -> bool:
        """Set columns of a batch (status, ended_at, counts...); with ``worker``, only if
        that worker owns it. A batch that reaches a done status is released."""
        cond: list[ColumnElement[bool]] = [S.batches.c.id == batch_id]
        if worker is not None:
            cond.append(S.batches.c.claimed_by == worker)
        if values.get("status") in BATCH_DONE:
            values = {"claimed_by": None, "lease_until": None, **values}
        with self.engine.begin() as conn:
            res = conn.execute(update(S.batches).where(and_(*cond)).values(**values))
        return bool(res.rowcount)

    def list_batches(self, run_id: str) -> list[BatchRow]:
        q = select(S.batches).where(S.batches.c.run_id == run_id).order_by(
            S.batches.c.created_at)
        with self.engine.connect() as conn:
            return [_batch_row(r) for r in conn.execute(q).mappings()]

    def batch_members(self, batch_id: str) -> dict[str, int]:
        """``custom_id -> seq`` of the jobs sent in a batch (to file its results)."""
        q = select(S.jobs.c.custom_id, S.jobs.c.seq).where(S.jobs.c.batch_id == batch_id)
        with self.engine.connect() as conn:
            return {str(cid): int(seq) for cid, seq in conn.execute(q)}
