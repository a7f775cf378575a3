"""A run's ``--budget`` in the ledger, so it holds across every process working on it.

``runs.committed_usd`` is what the run's recorded results cost plus the worst case of
its realtime requests in flight (added by 011b_run_budget, started at what its jobs had
cost). A request is sent only once :meth:`RunBudgetLedger.reserve_run` added its worst
case in one statement that checks ``committed + worst <= budget``: no number of workers
on one ledger, on any hosts, can reserve past it. Its result settles the reservation in
the same transaction that records it (:func:`settle`, from ``finish``: the
real cost in, the worst case out); a request that failed gives its worst case back
(:meth:`~RunBudgetLedger.release_run`). A request whose answer was never recorded (a
kill) stays charged at its worst case, the API having no usage lookup, until a process
takes the run up with nothing of it in flight (:meth:`~RunBudgetLedger.recount_run`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, update

from laneway.store import schema as S
from laneway.store.statuses import JobStatus

_R = S.runs.c
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


class RunBudgetLedger:
    """Run budget reservations; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    def reserve_run(self, run_id: str, worst_usd: float, *, budget_usd: float) -> bool:
        """Reserve ``worst_usd`` of the run's budget; False (nothing written) if the
        run's committed total plus it would pass ``budget_usd``."""
        with self.engine.begin() as conn:
            res: Any = conn.execute(update(S.runs).where(
                _R.id == run_id, _R.committed_usd + worst_usd <= budget_usd + _EPS,
            ).values(committed_usd=_R.committed_usd + worst_usd))
        return bool(res.rowcount == 1)

    def recount_run(self, run_id: str) -> bool:
        """Back to what the run's results cost, if no job of it is claimed: a request
        reserved is always a claimed job's (claimed before, recorded and settled in one
        transaction), so nothing reserved is in flight then, and what a killed process
        left reserved is forgotten. Returns whether it was recounted.

        One statement: a reservation racing it waits for the run's row and lands on top."""
        j = S.jobs.c
        spent = select(func.coalesce(func.sum(j.cost_usd), 0.0)).where(
            j.run_id == run_id).scalar_subquery()
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
