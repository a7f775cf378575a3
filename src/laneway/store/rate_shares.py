"""The ``rate_shares`` table: what each gateway process wants of the account's limits,
and the part of them it holds.

Several ``laneway serve`` processes on one account (``--workers N``, or hosts on one
PostgreSQL ledger) each beat about once a second with :func:`heartbeat`: it records
what the process wants now (one row per model it uses, and a presence row with model
``''``), reads every live row, asks ``decide`` (see :mod:`laneway.governor.share`) for
the process's new grants, and records them. A beat that raises a grant runs in a
transaction no other such beat runs alongside (an advisory lock on PostgreSQL, the write
lock on SQLite), so it sees the others' grants as they are, and the live grants never
sum to more than what ``decide`` leaves (at most 1). On PostgreSQL a beat that raises
none takes no lock (lowering or keeping a grant cannot pass the sum), so a steady
fleet's beats do not queue behind one another.

Times are the database's clock, so hosts' clocks need not agree; a row not beaten
within ``live_s`` is a process gone, and its grant goes to the others. Sooner on the
same host: a process that recorded itself in ``holders`` (:func:`join`) and is known
gone there (:func:`laneway.store.holders.is_gone`: its pid dead or reused, the host
booted since) holds nothing from the next beat of anyone (a killed worker's large share
was held 5 s). :func:`leave` removes a process's rows when it stops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Float,
    and_,
    bindparam,
    cast,
    delete,
    func,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from laneway.store import schema as S
from laneway.store.holders import HOLDER_COLUMNS, identity_of, is_gone, this_identity
from laneway.store.ledger import Store

#: A row older than this (seconds) is deleted by the next beat of anyone.
STALE_S = 300.0
#: The advisory lock that makes beats one at a time on PostgreSQL.
_LOCK = 7411000004
Triple = tuple[float, float, float]
Limits = tuple[int | None, int | None, int | None]


@dataclass(frozen=True, slots=True)
class ShareRow:
    """One live process's row for one model."""

    process: str
    host: str
    pid: int
    model: str
    #: Requests, input tokens and output tokens per minute.
    wanted: Triple
    #: The part of each limit it holds (requests, input, output).
    granted: Triple
    #: The account's limits per minute as it knows them (None: not known).
    limits: Limits
    #: Seconds since its last beat, by the database's clock.
    age_s: float


#: Given the live rows (this process's with its new wants and old grants), this
#: process's grants by model.
Decide = Callable[[list[ShareRow]], Mapping[str, Triple]]


def db_now(store: Store) -> ColumnElement[float]:
    """The database's clock, in Unix seconds."""
    if store.is_postgres:
        return cast(func.extract("epoch", func.clock_timestamp()), Float)
    return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)


def heartbeat(store: Store, process: str, *, host: str, pid: int,
              wanted: Mapping[str, Triple], limits: Mapping[str, Limits], decide: Decide,
              live_s: float = 5.0) -> list[ShareRow]:
    """Record what ``process`` wants and the limits it knows (by model), set its grants
    to what ``decide`` says, and return every live row as it is then.

    On PostgreSQL a beat that raises none of its grants (a steady fleet's beats) takes
    no lock: lowering or keeping a grant can never make the grants sum past what the
    others' beats (under the lock) left. A beat that would raise one is done again
    under the lock, one at a time."""
    if store.is_postgres:
        rows = _beat(store, process, host=host, pid=pid, wanted=wanted, limits=limits,
                     decide=decide, live_s=live_s, locked=False)
        if rows is not None:
            return rows
    rows = _beat(store, process, host=host, pid=pid, wanted=wanted, limits=limits,
                 decide=decide, live_s=live_s, locked=True)
    assert rows is not None
    return rows


def _raises(rows: list[ShareRow], process: str, grants: Mapping[str, Triple]) -> bool:
    held = {r.model: r.granted for r in rows if r.process == process}
    return any(g[i] > held.get(model, (0.0, 0.0, 0.0))[i]
               for model, g in grants.items() for i in range(3))


def _beat(store: Store, process: str, *, host: str, pid: int,
          wanted: Mapping[str, Triple], limits: Mapping[str, Limits], decide: Decide,
          live_s: float, locked: bool) -> list[ShareRow] | None:
    """One beat (see :func:`heartbeat`); unlocked, None (nothing written) when it would
    raise a grant."""
    t = S.rate_shares
    dialect: Any = postgresql if store.is_postgres else sqlite
    now_sql = select(db_now(store))
    with store.engine.connect() as conn:
        # SQLite: this read runs outside the transaction, which begins with the write
        # below (taking the write lock first, it always sees the others' last beats).
        now = float(conn.scalar(now_sql) or 0.0)
        if store.is_postgres and locked:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
            now = float(conn.scalar(now_sql) or 0.0)
        ins = dialect.insert(t)
        conn.execute(ins.on_conflict_do_update(
            index_elements=[t.c.process, t.c.model],
            set_={name: ins.excluded[name] for name in (
                "host", "pid", "want_requests", "want_input", "want_output",
                "limit_requests", "limit_input", "limit_output", "heartbeat_at")}),
            [_row(process, model, host, pid, w, limits.get(model), now)
             for model, w in wanted.items()])
        rows = _live_rows(conn, now, live_s)
        grants = decide(rows)
        if not locked and _raises(rows, process, grants):
            conn.rollback()
            return None
        if grants:
            conn.execute(
                update(t).where(and_(t.c.process == process,
                                     t.c.model == bindparam("m")))
                .values(grant_requests=bindparam("r"), grant_input=bindparam("i"),
                        grant_output=bindparam("o")),
                [{"m": m, "r": g[0], "i": g[1], "o": g[2]} for m, g in grants.items()])
        conn.execute(delete(t).where(t.c.heartbeat_at < now - STALE_S))
        conn.commit()
        return _live_rows(conn, now, live_s)


def _row(process: str, model: str, host: str, pid: int, wanted: Triple,
         limits: Limits | None, now: float) -> dict[str, Any]:
    known = limits or (None, None, None)
    return {"process": process, "model": model, "host": host, "pid": pid,
            "want_requests": float(wanted[0]), "want_input": float(wanted[1]),
            "want_output": float(wanted[2]), "grant_requests": 0.0, "grant_input": 0.0,
            "grant_output": 0.0, "limit_requests": known[0], "limit_input": known[1],
            "limit_output": known[2], "heartbeat_at": now}


def live(store: Store, *, live_s: float = 5.0) -> list[ShareRow]:
    """Every row beaten within ``live_s`` (who shares the account now)."""
    with store.engine.connect() as conn:
        now = float(conn.scalar(select(db_now(store))) or 0.0)
        return _live_rows(conn, now, live_s)


def join(store: Store, process: str) -> None:
    """Record ``process`` (this one) in ``holders``, so the others' beats learn at once
    when it is gone from this host (see the module docstring)."""
    store.register_holder(process, this_identity())


def _live_rows(conn: Connection, now: float, live_s: float) -> list[ShareRow]:
    t, h = S.rate_shares, S.holders
    found = [r for r in conn.execute(
        select(t, *(h.c[c].label("holder_" + c) for c in HOLDER_COLUMNS))
        .select_from(t.outerjoin(h, h.c.id == t.c.process))
        .where(t.c.heartbeat_at >= now - live_s).order_by(t.c.model, t.c.process))]
    if any(r.holder_host is not None for r in found):
        me = this_identity()
        found = [r for r in found if r.holder_host is None or not is_gone(
            identity_of({c: getattr(r, "holder_" + c) for c in HOLDER_COLUMNS}), me)]
    return [ShareRow(r.process, r.host, int(r.pid), r.model,
                     (float(r.want_requests), float(r.want_input), float(r.want_output)),
                     (float(r.grant_requests), float(r.grant_input),
                      float(r.grant_output)),
                     (r.limit_requests, r.limit_input, r.limit_output),
                     max(0.0, now - float(r.heartbeat_at))) for r in found]


def leave(store: Store, process: str) -> None:
    """Remove ``process``'s rows (it stops: its grants go to the others at once)."""
    with store.engine.begin() as conn:
        conn.execute(delete(S.rate_shares).where(S.rate_shares.c.process == process))
        conn.execute(delete(S.holders).where(S.holders.c.id == process))
