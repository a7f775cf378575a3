"""The gateway's Message Batches, mixed into the store.

A batch made through the gateway (``POST /v1/messages/batches``) is a run of the ledger
named by the batch's id; its row here holds what the API's batch object has and a run
has not: who made it (the client key), when it expires, when a cancel was asked, when it
ended, how it is fulfilled (and why), and the requests refused before the run (their
params could not become a job). A deleted batch keeps its row (``deleted_at``): its run
and costs stay in the ledger, its client no longer sees it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update

from laneway.store import schema as S
from laneway.store.statuses import JobStatus

_G = S.gateway_batches.c
#: Floating-point slack of a budget's comparison (as the reservations' own).
_EPS = 1e-11


@dataclass(frozen=True, slots=True)
class GatewayBatch:
    id: str
    key_id: str | None
    request_count: int
    created_at: float
    expires_at: float
    deadline_at: float | None
    mode: str
    plan: str | None
    input_path: str | None
    #: ``(custom_id, result)`` of the requests refused before the run.
    rejected: list[tuple[str, dict[str, Any]]]
    cancel_initiated_at: float | None
    ended_at: float | None

    @property
    def status(self) -> str:
        """The API's ``processing_status``."""
        if self.ended_at is not None:
            return "ended"
        return "canceling" if self.cancel_initiated_at is not None else "in_progress"


def _batch(r: Any) -> GatewayBatch:
    return GatewayBatch(
        id=r["id"], key_id=r["key_id"], request_count=int(r["request_count"]),
        created_at=float(r["created_at"]), expires_at=float(r["expires_at"]),
        deadline_at=r["deadline_at"], mode=r["mode"], plan=r["plan"],
        input_path=r["input_path"],
        rejected=[(str(c), dict(v)) for c, v in json.loads(r["rejected"] or "[]")],
        cancel_initiated_at=r["cancel_initiated_at"], ended_at=r["ended_at"])


def _owned(key_id: str | None) -> Any:
    return _G.key_id.is_(None) if key_id is None else _G.key_id == key_id


class GatewayBatchLedger:
    """Gateway batches; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    def add_gateway_batch(self, batch: GatewayBatch) -> None:
        with self.engine.begin() as conn:
            conn.execute(S.gateway_batches.insert().values(
                id=batch.id, key_id=batch.key_id, request_count=batch.request_count,
                created_at=batch.created_at, expires_at=batch.expires_at,
                deadline_at=batch.deadline_at, mode=batch.mode, plan=batch.plan,
                input_path=batch.input_path,
                rejected=json.dumps(batch.rejected, separators=(",", ":"))
                if batch.rejected else None,
                cancel_initiated_at=batch.cancel_initiated_at, ended_at=batch.ended_at))

    def gateway_batch(self, batch_id: str, *, key_id: str | None,
                      any_key: bool = False) -> GatewayBatch | None:
        """The batch, if ``key_id`` made it (or whoever did, with ``any_key``) and it is
        not deleted."""
        q = select(S.gateway_batches).where(_G.id == batch_id, _G.deleted_at.is_(None))
        if not any_key:
            q = q.where(_owned(key_id))
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return _batch(row) if row else None

    def gateway_batch_page(self, *, key_id: str | None, limit: int, after_id: str | None,
                           before_id: str | None) -> tuple[list[GatewayBatch], bool] | None:
        """Newest first: the ``limit`` batches after ``after_id`` (older) or before
        ``before_id`` (newer), and whether there are more; None if the id given is not
        one of the key's batches."""
        visible = [_owned(key_id), _G.deleted_at.is_(None)]
        q = select(S.gateway_batches).where(*visible)
        anchor_id = after_id if after_id is not None else before_id
        with self.engine.connect() as conn:
            if anchor_id is not None:
                anchor = conn.scalar(select(_G.seq).where(_G.id == anchor_id, *visible))
                if anchor is None:
                    return None
                q = q.where(_G.seq < anchor) if after_id is not None else q.where(
                    _G.seq > anchor)
            newer_first = after_id is not None or before_id is None
            q = q.order_by(_G.seq.desc() if newer_first else _G.seq.asc()).limit(limit + 1)
            rows = [_batch(r) for r in conn.execute(q).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return (rows if newer_first else rows[::-1]), more

    def unended_gateway_batches(self) -> list[GatewayBatch]:
        """Batches not ended (nor deleted), oldest first: the work a gateway resumes."""
        q = (select(S.gateway_batches)
             .where(_G.ended_at.is_(None), _G.deleted_at.is_(None)).order_by(_G.seq))
        with self.engine.connect() as conn:
            return [_batch(r) for r in conn.execute(q).mappings()]

    def _set(self, batch_id: str, *conds: Any, **values: Any) -> bool:
        with self.engine.begin() as conn:
            res = conn.execute(update(S.gateway_batches).where(
                _G.id == batch_id, *conds).values(**values))
        return bool(res.rowcount)

    def end_gateway_batch(self, batch_id: str, at: float | None = None) -> bool:
        """Mark it ended (once); False if it already was."""
        return self._set(batch_id, _G.ended_at.is_(None), ended_at=at or time.time())

    def cancel_gateway_batch(self, batch_id: str) -> bool:
        """Record the cancel (once, while it runs); False if it had ended or was canceled."""
        return self._set(batch_id, _G.ended_at.is_(None), _G.cancel_initiated_at.is_(None),
                         cancel_initiated_at=time.time())

    def delete_gateway_batch(self, batch_id: str) -> bool:
        return self._set(batch_id, _G.deleted_at.is_(None), deleted_at=time.time())

    def batch_to_realtime(self, batch_id: str, *, worst_usd: float, reason: str) -> bool:
        """The batch is sent realtime (the upstream has no Message Batches): its
        reservation grows to ``worst_usd`` (the realtime price), as far as its key's
        budget takes it, in one transaction with its mode and plan; False (nothing
        changed) if the budget cannot take it."""
        r, k = S.gateway_requests.c, S.gateway_keys.c
        with self.engine.begin() as conn:
            row = conn.execute(select(r.id, r.key_id, r.worst_usd).where(
                r.batch_id == batch_id, r.state == "reserved")).first()
            if row is not None:
                extra = max(0.0, worst_usd - float(row.worst_usd or 0.0))
                if row.key_id is not None and extra > 0:
                    room = k.spent_usd + k.reserved_usd + k.held_usd + extra
                    held = conn.execute(update(S.gateway_keys).where(
                        k.id == row.key_id, k.budget_usd.is_(None) | (room <= k.budget_usd + _EPS),
                    ).values(reserved_usd=k.reserved_usd + extra))
                    if held.rowcount != 1:
                        conn.rollback()
                        return False
                conn.execute(update(S.gateway_requests).where(r.id == row.id).values(
                    worst_usd=float(row.worst_usd or 0.0) + extra))
            conn.execute(update(S.gateway_batches).where(_G.id == batch_id).values(
                mode="realtime", plan=reason))
        return True

    def expire_canceled(self, run_id: str) -> int:
        """The run's ``canceled`` jobs become ``expired`` (a batch stopped at its expiry
        is canceled like any other, but its client is told its requests expired)."""
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.CANCELED,
            ).values(status=JobStatus.EXPIRED, result=json.dumps({"type": "expired"}),
                     updated_at=time.time()))
        return int(res.rowcount or 0)
