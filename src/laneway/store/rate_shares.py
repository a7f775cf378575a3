"""What each gateway process wants of the account's limits: the ``rate_shares`` table.

Several ``laneway serve`` processes on one account (``--workers N``, or hosts on one
PostgreSQL ledger) each beat about once a second: :func:`heartbeat` upserts the
process's rows (one per model it uses, and a presence row with model ``''``) and
returns every live row, from which each computes its share of the limits (see
:mod:`laneway.governor_share`). Times are the database's clock, so hosts' clocks need
not agree; a row not beaten within ``live_s`` is a process gone, and its share goes
to the others. :func:`leave` removes a process's rows when it stops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Float, cast, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite

from laneway.store import schema as S
from laneway.store.ledger import Store

#: A row older than this (seconds) is deleted by the next beat of anyone.
STALE_S = 300.0


@dataclass(frozen=True, slots=True)
class ShareRow:
    """One live process's wants for one model, per minute."""

    process: str
    host: str
    pid: int
    model: str
    requests: float
    input: float
    output: float
    #: Seconds since its last beat, by the database's clock.
    age_s: float


def db_now(store: Store) -> ColumnElement[float]:
    """The database's clock, in Unix seconds."""
    if store.is_postgres:
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)


def heartbeat(store: Store, process: str, *, host: str, pid: int,
              wanted: Mapping[str, tuple[float, float, float]], live_s: float = 5.0
              ) -> list[ShareRow]:
    """Record what ``process`` wants now (by model: requests, input and output tokens
    per minute) and return every row beaten within ``live_s``, its own included."""
    t = S.rate_shares
    dialect: Any = postgresql if store.is_postgres else sqlite
    with store.engine.begin() as conn:
        now = float(conn.scalar(select(db_now(store))) or 0.0)
        rows = [{"process": process, "model": model, "host": host, "pid": pid,
                 "want_requests": float(w[0]), "want_input": float(w[1]),
                 "want_output": float(w[2]), "heartbeat_at": now}
                for model, w in wanted.items()]
        if rows:
            ins = dialect.insert(t)
            conn.execute(ins.on_conflict_do_update(
                index_elements=[t.c.process, t.c.model],
                set_={name: ins.excluded[name] for name in (
                    "host", "pid", "want_requests", "want_input", "want_output",
                    "heartbeat_at")}), rows)
        conn.execute(delete(t).where(t.c.heartbeat_at < now - STALE_S))
        return _live_rows(conn, now, live_s)


def live(store: Store, *, live_s: float = 5.0) -> list[ShareRow]:
    """Every row beaten within ``live_s`` (who shares the account now)."""
    with store.engine.connect() as conn:
        now = float(conn.scalar(select(db_now(store))) or 0.0)
        return _live_rows(conn, now, live_s)


def _live_rows(conn: Connection, now: float, live_s: float) -> list[ShareRow]:
    t = S.rate_shares
    found = conn.execute(select(t).where(t.c.heartbeat_at >= now - live_s)
                         .order_by(t.c.model, t.c.process))
    return [ShareRow(r.process, r.host, int(r.pid), r.model, float(r.want_requests),
                     float(r.want_input), float(r.want_output),
                     max(0.0, now - float(r.heartbeat_at))) for r in found]


def leave(store: Store, process: str) -> None:
    """Remove ``process``'s rows (it stops: its share goes to the others at once)."""
    with store.engine.begin() as conn:
        conn.execute(delete(S.rate_shares).where(S.rate_shares.c.process == process))
