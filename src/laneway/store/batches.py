"""Native batches in the ledger: the SQL of a batch's life, mixed into the store.

Synchronous and short, like every :class:`laneway.store.Store` method: async code
calls them through :class:`laneway.store.AsyncStore`. Written against the tables of
:mod:`laneway.store.schema`, in SQL that SQLite and PostgreSQL both run.

The life of one batch row (:class:`BatchStatus`):

``submitting``
    written, with its jobs moved from ``claimed`` to ``submitted`` (``jobs.batch_id``
    set), in one transaction *before* ``create`` is called (:meth:`~BatchLedger.begin_batch`);
``submitted``
    the provider's id stored the moment ``create`` returns
    (:meth:`~BatchLedger.batch_submitted`);
``canceling``
    laneway asked the provider to cancel it;
``ended``
    its results are all filed (:meth:`~BatchLedger.end_batch`);
``lost``
    ``create`` never took effect, or the provider no longer knows the batch: its
    unfinished jobs went back to ``pending`` (:meth:`~BatchLedger.abandon_batch`).

A row is owned by one worker (``claimed_by``) under a lease; a worker only polls,
recovers or ends the rows it owns (:meth:`~BatchLedger.own_batches`), so two workers
never both decide a batch's fate. Leases are timed by the database's clock
(:func:`~laneway.store.queue.lease_clock`), as job leases are, so workers on hosts
whose clocks disagree still agree on whose batch it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, and_, or_, select, update

from laneway.store import run_budget
from laneway.store import schema as S
from laneway.store.holders import HolderLedger
from laneway.store.queue import Finished, lease_clock
from laneway.store.statuses import ACTIVE_BATCHES, BatchStatus, JobStatus

_B = S.batches.c
_J = S.jobs.c
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class BatchRow:
    id: str
    run_id: str
    provider_batch_id: str | None
    status: BatchStatus
    request_count: int
    bytes: int
    created_at: float
    submitted_at: float | None
    ended_at: float | None
    counts: dict[str, int] | None
    claimed_by: str | None
    lease_until: float | None


class Begun(Enum):
    """What :meth:`BatchLedger.begin_batch` did; true only when the batch was recorded."""

    OK = "ok"
    #: Another worker holds some of its jobs now (a lease ran out).
    RACED = "raced"
    #: The run's budget cannot take the batch's worst case (another process reserved).
    OVER_BUDGET = "over_budget"

    def __bool__(self) -> bool:
        return self is Begun.OK


@dataclass(frozen=True, slots=True)
class Member:
    """A job still waiting for its result from a batch."""

    seq: int
    model: str
    attempts: int


def _row(r: Any) -> BatchRow:
    return BatchRow(
        id=r["id"], run_id=r["run_id"], provider_batch_id=r["provider_batch_id"],
        status=BatchStatus(r["status"]), request_count=int(r["request_count"]),
        bytes=int(r["bytes"]), created_at=float(r["created_at"]),
        submitted_at=r["submitted_at"], ended_at=r["ended_at"],
        counts=json.loads(r["counts"]) if r["counts"] else None,
        claimed_by=r["claimed_by"], lease_until=r["lease_until"])


def _chunks(seqs: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(seqs), _PAGE):
        yield list(seqs[start:start + _PAGE])


class BatchLedger(HolderLedger):
    """Native batch bookkeeping; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    if TYPE_CHECKING:  # JobQueue's, mixed in beside this one
        def _record(self, conn: Connection, items: Sequence[Finished]) -> list[int]: ...

    # -- submitting ----------------------------------------------------------------------
    def begin_batch(self, *, run_id: str, batch_id: str, seqs: Sequence[int],
                    size_bytes: int, worker: str, lease_s: float = 300.0,
                    reserve_usd: float = 0.0, budget_usd: float | None = None) -> Begun:
        """Record a submission before ``create``: the row, and the jobs moved to
        ``submitted`` (one more attempt each), in one transaction; with ``budget_usd``,
        ``reserve_usd`` (the batch's worst case) reserved of the run's budget in it too
        (see :mod:`laneway.store.run_budget`). Nothing changes (a false :class:`Begun`)
        if ``worker`` no longer holds every one of the claimed jobs ``seqs``
        (``RACED``) or the budget cannot take ``reserve_usd`` (``OVER_BUDGET``)."""
        now = time.time()
        if budget_usd is None:
            reserve_usd = 0.0
        self.note_holder(worker)
        with self.engine.begin() as conn:
            moved = 0
            for part in _chunks(seqs):
                res = conn.execute(update(S.jobs).where(
                    _J.run_id == run_id, _J.seq.in_(part), _J.status == JobStatus.CLAIMED,
                    _J.claimed_by == worker,
                ).values(status=JobStatus.SUBMITTED, batch_id=batch_id, attempts=_J.attempts + 1,
                         lease_until=None, updated_at=now))
                moved += int(res.rowcount or 0)
            if moved != len(set(seqs)):
                conn.rollback()
                return Begun.RACED
            if budget_usd is not None and reserve_usd and not run_budget.reserve(
                    conn, run_id, reserve_usd, budget_usd=budget_usd):
                conn.rollback()
                return Begun.OVER_BUDGET
            conn.execute(S.batches.insert().values(
                id=batch_id, run_id=run_id, status=BatchStatus.SUBMITTING,
                request_count=len(seqs), bytes=size_bytes, created_at=now,
                claimed_by=worker, lease_until=lease_clock(self.engine) + lease_s,
                reserved_usd=reserve_usd))
        return Begun.OK

    def batch_submitted(self, batch_id: str, provider_batch_id: str) -> None:
        """The provider's id, stored the moment ``create`` returns it."""
        with self.engine.begin() as conn:
            conn.execute(update(S.batches).where(_B.id == batch_id).values(
                provider_batch_id=provider_batch_id, status=BatchStatus.SUBMITTED,
                submitted_at=time.time()))

    def set_batch_status(self, batch_id: str, status: BatchStatus,
                         counts: dict[str, int] | None = None) -> None:
        values: dict[str, Any] = {"status": status}
        if counts is not None:
            values["counts"] = json.dumps(counts, sort_keys=True)
        with self.engine.begin() as conn:
            conn.execute(update(S.batches).where(_B.id == batch_id).values(**values))

    def end_batch(self, batch_id: str, counts: dict[str, int] | None,
                  ended_at: float | None = None) -> int:
        """Mark a batch ended once its results are filed; any of its jobs still waiting
        (none, unless the results file missed some) go back to ``pending``."""
        now = time.time()
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                _J.batch_id == batch_id, _J.status == JobStatus.SUBMITTED,
            ).values(status=JobStatus.PENDING, batch_id=None, updated_at=now))
            values: dict[str, Any] = {"status": BatchStatus.ENDED,
                                      "ended_at": ended_at or now, "claimed_by": None,
                                      "lease_until": None}
            if counts is not None:
                values["counts"] = json.dumps(counts, sort_keys=True)
            conn.execute(update(S.batches).where(_B.id == batch_id).values(**values))
            run_budget.release_batch(conn, batch_id)
        return int(res.rowcount or 0)

    def abandon_batch(self, batch_id: str, *, refund_attempt: bool = False) -> int:
        """The batch never ran (or is gone): its waiting jobs become ``pending`` again.

        ``refund_attempt``: the batch never reached the provider, so the attempt that
        :meth:`begin_batch` counted is taken back.
        """
        now = time.time()
        values: dict[str, Any] = {"status": JobStatus.PENDING, "batch_id": None, "updated_at": now}
        if refund_attempt:
            values["attempts"] = _J.attempts - 1  # begin_batch added one
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                _J.batch_id == batch_id, _J.status == JobStatus.SUBMITTED,
            ).values(**values))
            conn.execute(update(S.batches).where(_B.id == batch_id).values(
                status=BatchStatus.LOST, ended_at=now, claimed_by=None, lease_until=None))
            run_budget.release_batch(conn, batch_id)
        return int(res.rowcount or 0)

    def file_results(self, run_id: str, batch_id: str, items: Sequence[Finished],
                     again: Sequence[int], worst: Mapping[int, float]) -> tuple[list[int], int]:
        """File a group of a batch's results in one transaction: ``items`` recorded
        (as :meth:`~laneway.store.queue.JobQueue.finish`), the jobs ``again`` sent again
        (``submitted`` back to ``pending``), and the worst case (``worst``, by seq) of
        each job this moved given back of the batch's reservation. Returns the seqs
        recorded and how many went back."""
        now = time.time()
        moved: list[int] = []
        with self.engine.begin() as conn:
            recorded = self._record(conn, items) if items else []
            for part in _chunks(again):
                moved.extend(int(seq) for seq in conn.scalars(update(S.jobs).where(
                    _J.run_id == run_id, _J.seq.in_(part), _J.batch_id == batch_id,
                    _J.status == JobStatus.SUBMITTED,
                ).values(status=JobStatus.PENDING, batch_id=None, updated_at=now
                         ).returning(_J.seq)))
            run_budget.settle_batch(conn, run_id, batch_id, sum(
                worst.get(seq, 0.0) for seq in (*recorded, *moved)))
        return recorded, len(moved)

    # -- owning and reading --------------------------------------------------------------
    def release_batches(self, run_id: str) -> int:
        """Give up every hold on the run's active batches (a single-process run starting
        over after its process stopped): the next poller takes them at once."""
        with self.engine.begin() as conn:
            res = conn.execute(update(S.batches).where(
                _B.run_id == run_id, _B.status.in_(ACTIVE_BATCHES),
            ).values(claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    def own_batches(self, run_id: str, *, worker: str, lease_s: float = 300.0
                    ) -> list[BatchRow]:
        """Take (or keep, renewing the lease) the run's active batches that nobody else
        holds or whose owner's lease ran out, and return those ``worker`` owns, oldest
        first. "Ran out" is judged by the database's clock, never this host's."""
        self.note_holder(worker)
        now = lease_clock(self.engine)
        free = or_(_B.claimed_by.is_(None), _B.claimed_by == worker, _B.lease_until < now)
        with self.engine.begin() as conn:
            conn.execute(update(S.batches).where(
                _B.run_id == run_id, _B.status.in_(ACTIVE_BATCHES), free,
            ).values(claimed_by=worker, lease_until=now + lease_s))
            rows = conn.execute(select(S.batches).where(
                _B.run_id == run_id, _B.status.in_(ACTIVE_BATCHES), _B.claimed_by == worker,
            ).order_by(_B.created_at)).mappings().all()
        return [_row(r) for r in rows]

    def run_batches(self, run_id: str) -> list[BatchRow]:
        """Every batch row of a run, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(S.batches).where(_B.run_id == run_id)
                                .order_by(_B.created_at)).mappings().all()
        return [_row(r) for r in rows]

    def known_provider_ids(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that some batch row (of any run) already holds."""
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return {str(i) for i in conn.scalars(select(_B.provider_batch_id).where(
                _B.provider_batch_id.in_(list(ids))))}

    def batch_members(self, run_id: str, batch_id: str) -> dict[int, Member]:
        """The jobs of a batch still waiting for a result, by seq."""
        q = select(_J.seq, _J.model, _J.attempts).where(
            _J.run_id == run_id, _J.batch_id == batch_id, _J.status == JobStatus.SUBMITTED)
        with self.engine.connect() as conn:
            return {int(s): Member(int(s), str(m), int(a)) for s, m, a in conn.execute(q)}

    def submitted_params(self, run_id: str, batch_id: str) -> dict[int, dict[str, Any]]:
        """The params of the jobs waiting in a batch, by seq (what they may still cost)."""
        q = select(_J.seq, _J.params).where(
            _J.run_id == run_id, _J.status == JobStatus.SUBMITTED, _J.batch_id == batch_id)
        with self.engine.connect() as conn:
            return {int(seq): json.loads(p) for seq, p in conn.execute(q)}

    def batch_durations_s(self, *, provider: str, limit: int = 20) -> list[float]:
        """How long the last ended batches took, submission to end, for this provider."""
        q = (select(_B.ended_at - _B.submitted_at)
             .select_from(S.batches.join(S.runs, S.runs.c.id == _B.run_id))
             .where(_B.status == BatchStatus.ENDED, _B.submitted_at.is_not(None),
                    and_(_B.ended_at.is_not(None), S.runs.c.provider == provider))
             .order_by(_B.ended_at.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [float(d) for d in conn.scalars(q) if d is not None]
