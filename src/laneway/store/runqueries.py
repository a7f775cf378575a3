"""Questions about a run's jobs as a whole, mixed into the store: what is left to plan,
what was used, and canceling what was never sent."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, update

from laneway.store import schema as S
from laneway.store.queue import lease_clock
from laneway.store.statuses import FINAL_JOBS, JobStatus

_J = S.jobs.c
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Answered:
    """Succeeded jobs of a run that asked ``asked`` and were answered by ``answered``."""

    asked: str
    answered: str
    jobs: int
    cost_usd: float
    #: What they would have cost on ``asked`` (``None``: the asked model answered, or
    #: not every job's asked cost is known).
    asked_cost_usd: float | None


class RunQueries:
    """Whole-run reads and the cancel of unsent work; mixed into the store."""

    engine: Engine

    def unsent_seqs(self, run_id: str) -> list[int]:
        """Jobs not in any batch and not final (``pending``, or ``claimed`` by someone)."""
        q = select(_J.seq).where(_J.run_id == run_id,
                                 _J.status.in_((JobStatus.PENDING, JobStatus.CLAIMED)))
        with self.engine.connect() as conn:
            return [int(s) for s in conn.scalars(q.order_by(_J.seq))]

    def unfinished_params(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The params of every job not final yet, page by page in input order."""
        last = -1
        while True:
            q = (select(_J.seq, _J.params).where(
                _J.run_id == run_id, _J.seq > last, _J.status.not_in(FINAL_JOBS))
                .order_by(_J.seq).limit(_PAGE))
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            if not rows:
                return
            for _seq, params in rows:
                yield json.loads(params)
            last = int(rows[-1][0])

    def usage_by_model(self, run_id: str) -> list[tuple[str, int, int, int, int]]:
        """``(model, input, output, cache write, cache read)`` tokens of succeeded jobs."""
        q = (select(_J.model, func.coalesce(func.sum(_J.input_tokens), 0),
                    func.coalesce(func.sum(_J.output_tokens), 0),
                    func.coalesce(func.sum(_J.cache_creation_input_tokens), 0),
                    func.coalesce(func.sum(_J.cache_read_input_tokens), 0))
             .where(_J.run_id == run_id, _J.status == JobStatus.SUCCEEDED).group_by(_J.model))
        with self.engine.connect() as conn:
            return [(str(m), int(i), int(o), int(w), int(r))
                    for m, i, o, w, r in conn.execute(q)]

    def answered_models(self, run_id: str) -> list[Answered]:
        """Per model asked for and model that answered, the run's succeeded jobs: how
        many, their cost, and what the asked model would have cost (when another
        answered). Jobs recorded before 007_answered_model count as answered by the
        model asked for."""
        answered = func.coalesce(_J.answered_model, _J.model)
        q = (select(_J.model, answered, func.count(),
                    func.coalesce(func.sum(_J.cost_usd), 0.0),
                    func.sum(_J.asked_cost_usd), func.count(_J.asked_cost_usd))
             .where(_J.run_id == run_id, _J.status == JobStatus.SUCCEEDED)
             .group_by(_J.model, answered).order_by(_J.model, answered))
        with self.engine.connect() as conn:
            return [Answered(str(m), str(a), int(n), float(c),
                             float(ac) if ac is not None and int(k) == int(n) else None)
                    for m, a, n, c, ac, k in conn.execute(q)]

    def cancel_unsent(self, run_id: str) -> int:
        """A canceled run: jobs not sent (``pending``, or ``claimed`` under a lease that
        ran out, by the database's clock) become ``canceled``. Jobs a live worker holds
        are left to finish: their requests are already on the way and will be billed,
        so their results are kept."""
        now = time.time()
        sendable = or_(_J.status == JobStatus.PENDING,
                       and_(_J.status == JobStatus.CLAIMED,
                            _J.lease_until < lease_clock(self.engine)))
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(_J.run_id == run_id, sendable).values(
                status=JobStatus.CANCELED, result='{"type":"canceled"}', claimed_by=None,
                lease_until=None, batch_id=None, mode="canceled", updated_at=now,
                finished_at=now))
        return int(res.rowcount or 0)
