"""Rate-limit pauses shared between workers, through the ledger's ``pauses`` table.

When a 429 pauses one worker's background lane, the worker publishes the pause (model,
until when, why); the others read the table and pause too, instead of each finding
the limit with its own 429. One row per model; a pause is never shortened by a
publish (the later ``until`` wins), and rows whose time has passed mean nothing.
Times are wall-clock seconds (``time.time()``): hosts must keep their clocks in sync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from laneway.store import schema as S
from laneway.store.ledger import Store


@dataclass(frozen=True, slots=True)
class Pause:
    model: str
    until: float
    reason: str


def publish(store: Store, model: str, *, until: float, reason: str = "429") -> None:
    """Record that ``model``'s background lane is paused until ``until`` (wall time)."""
    p = S.pauses
    # Both dialects spell the upsert alike; the later ``until`` wins.
    dialect: Any = postgresql if store.is_postgres else sqlite
    ins = dialect.insert(p).values(model=model, until=until, reason=reason)
    stmt = ins.on_conflict_do_update(
        index_elements=[p.c.model], set_={"until": ins.excluded.until,
                                          "reason": ins.excluded.reason},
        where=p.c.until < ins.excluded.until)
    with store.engine.begin() as conn:
        conn.execute(stmt)


def active(store: Store, *, now: float | None = None) -> list[Pause]:
    """Every pause still in force, for a worker polling the table."""
    now = time.time() if now is None else now
    q = select(S.pauses).where(S.pauses.c.until > now).order_by(S.pauses.c.model)
    with store.engine.connect() as conn:
        return [Pause(r.model, float(r.until), r.reason or "") for r in conn.execute(q)]
