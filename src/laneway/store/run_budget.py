"""A run's ``--budget`` in the ledger, so it holds across every process working on it.

``runs.committed_usd`` is what the run's recorded results cost plus the worst case of
its requests in flight (added by 011b_run_budget, started at what its jobs had cost).
A realtime request is sent only once :meth:`RunBudgetLedger.reserve_run` added its
worst case in one statement that checks ``committed + worst <= budget``: no number of
workers on one ledger, on any hosts, can reserve past it. Its result settles the
reservation in the same transaction that records it (:func:`settle`, from ``finish``:
the real cost in, the worst case out); a request that failed gives its worst case back
(:meth:`~RunBudgetLedger.release_run`). A request whose answer was never recorded (a
kill) stays charged at its worst case, the API having no usage lookup, until a process
takes the run up with nothing of it in flight (:meth:`~RunBudgetLedger.recount_run`).

A native batch reserves the worst case of all its requests (at the batch price) the
same way, in the transaction that records it before ``create``
(:meth:`~laneway.store.batches.BatchLedger.begin_batch`, :func:`reserve`), and keeps
that reservation in its row (``batches.reserved_usd``, 012_batch_budget). Each group
of its results filed gives back the worst case of the jobs it moved, in the
transaction that files them (:func:`settle_batch`); its end, or its loss, gives back
what is left (:func:`release_batch`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from laneway.store import schema as S
from laneway.store.statuses import JobStatus

_R = S.runs.c
_B = S.batches.c
#: Floating-point slack of a budget's comparison (a billionth of a cent).
_EPS = 1e-11
#: Built once: every group commit of a priced run settles (its compiled form is cached).
_SETTLE = update(S.runs).where(_R.id == bindparam("run")).values(
    committed_usd=_R.committed_usd + bindparam("usd"))


def settle(conn: Connection, moves: Iterable[tuple[str, float]]) -> None:
    """Add each ``(run_id, usd)`` to its run's ``committed_usd``, one statement."""
    total: dict[str, float] = defaultdict(float)
    for run_id, usd in moves:
        total[run_id] += usd
    params = [{"run": run_id, "usd": usd} for run_id, usd in total.items() if usd]
    if params:
        conn.execute(_SETTLE, params)


def reserve(conn: Connection, run_id: str, usd: float, *, budget_usd: float) -> bool:
    """Add ``usd`` to the run's committed total if it stays within ``budget_usd``."""
    res: Any = conn.execute(update(S.runs).where(
        _R.id == run_id, _R.committed_usd + usd <= budget_usd + _EPS,
    ).values(committed_usd=_R.committed_usd + usd))
    return bool(res.rowcount == 1)


def settle_batch(conn: Connection, run_id: str, batch_id: str, usd: float) -> None:
    """Give back ``usd`` of a batch's reservation (the worst case of jobs it filed)."""
    if usd:
        conn.execute(update(S.batches).where(_B.id == batch_id).values(
            reserved_usd=_B.reserved_usd - usd))
        settle(conn, [(run_id, -usd)])


def release_batch(conn: Connection, batch_id: str) -> None:
    """Give back what is left of a batch's reservation (it ended, or was lost). Its row
    is locked first (an UPDATE), so two processes ending it give it back once."""
    conn.execute(update(S.batches).where(_B.id == batch_id).values(
        reserved_usd=_B.reserved_usd))
    row = conn.execute(select(_B.run_id, _B.reserved_usd).where(_B.id == batch_id)).first()
    if row is None or not row[1]:
        return
    conn.execute(update(S.batches).where(_B.id == batch_id).values(reserved_usd=0.0))
    settle(conn, [(str(row[0]), -float(row[1]))])


class RunBudgetLedger:
    """Run budget reservations; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    def reserve_run(self, run_id: str, worst_usd: float, *, budget_usd: float) -> bool:
        """Reserve ``worst_usd`` of the run's budget; False (nothing written) if the
        run's committed total plus it would pass ``budget_usd``."""
        with self.engine.begin() as conn:
            return reserve(conn, run_id, worst_usd, budget_usd=budget_usd)

    def committed_usd(self, run_id: str) -> float:
        """The run's committed total: what its results cost and its requests in flight
        may still cost."""
        with self.engine.connect() as conn:
            return float(conn.scalar(select(_R.committed_usd).where(_R.id == run_id)) or 0.0)

    def recount_run(self, run_id: str) -> bool:
        """Back to what the run's results cost plus its batches' reservations, if no job
        of it is claimed: a realtime request reserved is always a claimed job's (claimed
        before, recorded and settled in one transaction), so none is in flight then, and
        what a killed process left reserved is forgotten. Returns whether it was
        recounted.

        One statement: a reservation racing it waits for the run's row and lands on top."""
        j = S.jobs.c
        spent = (select(func.coalesce(func.sum(j.cost_usd), 0.0)).where(
            j.run_id == run_id).scalar_subquery()
            + select(func.coalesce(func.sum(_B.reserved_usd), 0.0)).where(
                _B.run_id == run_id).scalar_subquery())
        claimed = select(j.seq).where(j.run_id == run_id, j.status == JobStatus.CLAIMED)
        with self.engine.begin() as conn:
            res: Any = conn.execute(update(S.runs).where(
                _R.id == run_id, ~claimed.exists()).values(committed_usd=spent))
        return bool(res.rowcount == 1)

    def release_run(self, run_id: str, usd: float) -> None:
        """Give back a reservation whose request was not answered (nothing billed)."""
        if usd:
            with self.engine.begin() as conn:
                settle(conn, [(run_id, -usd)])
