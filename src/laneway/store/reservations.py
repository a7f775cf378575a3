"""A gateway request's reservation: its row in ``gateway_requests``, written before the
upstream is called, and its key's budget, mixed into the store.

:meth:`ReservationLedger.reserve` adds the worst case to the key's ``reserved_usd`` in
one conditional UPDATE (``... WHERE spent + reserved + held + worst <= budget``: atomic
on SQLite, whose writers take turns, and on PostgreSQL, which re-checks the condition
on the row it locked) and inserts the request's row, ``reserved``, in the same
transaction: no number of processes or hosts on one ledger can reserve past a budget.
:meth:`~ReservationLedger.settle_requests` completes rows (``done``) and moves each
worst case from reserved to what the request cost. A row left ``reserved`` by a
process that died (kill -9) is ``interrupted`` by the next one to start
(:meth:`~ReservationLedger.interrupt_requests`, which reads each row's process in
``holders``, see :mod:`laneway.store.holders`): charged its worst case, held on its
key until an operator releases it (:meth:`~ReservationLedger.release_holds`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, literal, select, update

from laneway.store import schema as S
from laneway.store.holders import HOLDER_COLUMNS, Identity, identity_of
from laneway.store.keys import ClientKey

_R = S.gateway_requests.c
_K = S.gateway_keys.c
_J = S.jobs.c
#: Floating-point slack of a budget's comparison (a billionth of a cent).
_EPS = 1e-11

RESERVED, DONE, INTERRUPTED, RELEASED = "reserved", "done", "interrupted", "released"


@dataclass(frozen=True, slots=True)
class Reservation:
    """A request about to be sent: its row, before the upstream is called."""

    key_id: str | None
    model: str
    lane: str
    streamed: bool
    worst_usd: float
    started_at: float
    #: ``host:pid:token`` of the process that holds it.
    process: str
    batch_id: str | None = None


@dataclass(frozen=True, slots=True)
class Settle:
    """How a reserved request ended."""

    row_id: int
    key_id: str | None
    worst_usd: float
    #: What it is charged: its cost, or its worst case when its usage was never seen;
    #: None for a model of unknown price.
    cost_usd: float | None
    status: int
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    queued_s: float
    ttft_s: float | None
    duration_s: float
    upstream_errors: int
    note: str | None = None
    #: The model that answered, and what the usage would have cost on the one asked
    #: for when another answered (007_answered_model).
    answered_model: str | None = None
    asked_cost_usd: float | None = None


def _key_moves(conn: Any, moves: dict[str, tuple[float, float, float]]) -> None:
    """Per key: (reserved, spent, held) added; the keys' rows locked in one order (by id)
    so that two processes' settles never wait for each other (a deadlock)."""
    for key_id, (reserved, spent, held) in sorted(moves.items()):
        conn.execute(_MOVE, {"b_key": key_id, "b_reserved": reserved, "b_spent": spent,
                             "b_held": held})


def _row_of(r: Reservation) -> dict[str, Any]:
    return {"key_id": r.key_id, "model": r.model, "lane": r.lane, "streamed": r.streamed,
            "worst_usd": r.worst_usd, "started_at": r.started_at, "process": r.process,
            "batch_id": r.batch_id}


_ZEROS = {"status": 0, "input_tokens": 0, "output_tokens": 0,
          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "queued_s": 0.0,
          "duration_s": 0.0, "upstream_errors": 0}


def _hold(r: Reservation) -> Any:
    """The key's UPDATE adding ``r``'s worst case, if its budget can take it."""
    room = _K.spent_usd + _K.reserved_usd + _K.held_usd + r.worst_usd
    return update(S.gateway_keys).where(
        _K.id == r.key_id, _K.revoked_at.is_(None),
        _K.budget_usd.is_(None) | (room <= _K.budget_usd + _EPS),
    ).values(reserved_usd=_K.reserved_usd + r.worst_usd)


#: :func:`_hold` and the row's INSERT, built once (compiled once, then cached by
#: SQLAlchemy): building them for each request cost more than running them.
_HOLD = update(S.gateway_keys).where(
    _K.id == bindparam("b_key"), _K.revoked_at.is_(None),
    _K.budget_usd.is_(None) | (_K.spent_usd + _K.reserved_usd + _K.held_usd
                               + bindparam("b_worst") <= _K.budget_usd + _EPS),
).values(reserved_usd=_K.reserved_usd + bindparam("b_worst"))
_INSERT = S.gateway_requests.insert()
#: A settle's UPDATE of its row (only while it is still reserved): each of
#: :class:`Settle`'s values but the three that say which row and key.
_SETTLED = [f.name for f in fields(Settle) if f.name not in ("row_id", "key_id", "worst_usd")]
_SETTLE = update(S.gateway_requests).where(
    _R.id == bindparam("b_row"), _R.state == RESERVED,
).values({**{n: bindparam(f"b_{n}") for n in _SETTLED}, "state": DONE})
#: A key's amounts moved (:func:`_key_moves`).
_MOVE = update(S.gateway_keys).where(_K.id == bindparam("b_key")).values(
    reserved_usd=_K.reserved_usd + bindparam("b_reserved"),
    spent_usd=_K.spent_usd + bindparam("b_spent"), held_usd=_K.held_usd + bindparam("b_held"))


class ReservationLedger:
    """Reservations; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    if TYPE_CHECKING:  # KeyLedger's, mixed in beside this one
        def _named(self, ref: str) -> ClientKey: ...

    def reserve(self, r: Reservation) -> int | None:
        """The request's row id; None if its key is revoked or its budget cannot take
        ``r.worst_usd`` (nothing is written then). One statement on PostgreSQL (the
        key's UPDATE in a CTE the row's INSERT selects from); two in one transaction on
        SQLite, whose writers take turns (built once: :data:`_HOLD`, :data:`_INSERT`)."""
        values = {**_row_of(r), "state": RESERVED, **_ZEROS}
        with self.engine.begin() as conn:
            if r.key_id is not None and self.engine.dialect.name == "postgresql":
                k = _hold(r).returning(_K.id).cte("k")
                names = list(values)
                row_id = conn.scalar(S.gateway_requests.insert().from_select(
                    names, select(*[literal(values[n], S.gateway_requests.c[n].type)
                                    for n in names]).select_from(k)
                ).returning(_R.id))
                return None if row_id is None else int(row_id)
            if r.key_id is not None and conn.execute(
                    _HOLD, {"b_key": r.key_id, "b_worst": r.worst_usd}).rowcount != 1:
                return None
            pk = conn.execute(_INSERT, values).inserted_primary_key
            assert pk is not None
            return int(pk[0])

    def settle_requests(self, settles: Sequence[Settle]) -> int:
        """Complete reserved rows, in one transaction; returns how many were still
        reserved (a row interrupted meanwhile keeps its worst case, held)."""
        moves: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        done = 0
        with self.engine.begin() as conn:
            for s in settles:
                params = {f"b_{n}": getattr(s, n) for n in _SETTLED}
                res = conn.execute(_SETTLE, {**params, "b_row": s.row_id})
                if res.rowcount != 1:
                    continue
                done += 1
                if s.key_id is not None:
                    moves[s.key_id][0] -= s.worst_usd
                    moves[s.key_id][1] += s.cost_usd or 0.0
            _key_moves(conn, {k: (v[0], v[1], v[2]) for k, v in moves.items()})
        return done

    def interrupt_requests(self, dead: Callable[[str, float, Identity | None], bool]) -> int:
        """Rows still ``reserved`` (not a batch's) whose process ``dead(process,
        started_at, holder)`` says is gone: ``interrupted``, charged their worst case,
        held on their keys. Returns how many. ``holder``: where the process runs, from
        the ``holders`` row of that name (None when there is none), read in the same
        statement as the rows, so a process that recorded itself before it reserved is
        always seen with its row."""
        h = S.holders.c
        q = select(_R.id, _R.key_id, _R.worst_usd, _R.process, _R.started_at,
                   *[h[n] for n in HOLDER_COLUMNS]).select_from(
            S.gateway_requests.outerjoin(S.holders, h.id == _R.process)).where(
            _R.state == RESERVED, _R.batch_id.is_(None))
        moves: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        count = 0
        with self.engine.begin() as conn:
            for row in list(conn.execute(q).mappings()):
                holder = identity_of(row) if row["host"] is not None else None
                if not dead(str(row["process"] or ""), float(row["started_at"]), holder):
                    continue
                worst = float(row["worst_usd"] or 0.0)
                res = conn.execute(update(S.gateway_requests).where(
                    _R.id == row["id"], _R.state == RESERVED).values(
                    state=INTERRUPTED, cost_usd=worst, note="interrupted: its process "
                    "ended before its answer did; charged its worst case, held"))
                if res.rowcount != 1:
                    continue
                count += 1
                if row["key_id"] is not None:
                    moves[row["key_id"]][0] -= worst
                    moves[row["key_id"]][2] += worst
            _key_moves(conn, {k: (v[0], v[1], v[2]) for k, v in moves.items()})
        return count

    def release_holds(self, name_or_prefix: str, note: str) -> tuple[ClientKey, int, float]:
        """An operator's settle of a key's holds: its ``interrupted`` rows become
        ``released`` (cost 0, with ``note``) and its held USD is freed. Returns the key,
        the rows and the USD released."""
        key = self._named(name_or_prefix)
        with self.engine.begin() as conn:
            rows = list(conn.execute(select(_R.id, _R.cost_usd).where(
                _R.key_id == key.id, _R.state == INTERRUPTED)).mappings())
            usd = 0.0
            for row in rows:
                res = conn.execute(update(S.gateway_requests).where(
                    _R.id == row["id"], _R.state == INTERRUPTED).values(
                    state=RELEASED, cost_usd=0.0, note=f"released: {note}"))
                usd += float(row["cost_usd"] or 0.0) if res.rowcount else 0.0
            _key_moves(conn, {key.id: (0.0, 0.0, -usd)})
        return self._named(key.name), len(rows), usd

    def settle_batch(self, batch_id: str, *, at: float) -> Settle | None:
        """Settle a Message Batch's reservation at what its run's jobs cost; None if it
        had none (or it is settled already)."""
        q = select(_R.id, _R.key_id, _R.worst_usd, _R.started_at).where(
            _R.batch_id == batch_id, _R.state == RESERVED)
        sums = select(*[func.coalesce(func.sum(c), 0) for c in (
            _J.input_tokens, _J.output_tokens, _J.cache_creation_input_tokens,
            _J.cache_read_input_tokens, _J.cost_usd)]).where(_J.run_id == batch_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
            totals = conn.execute(sums).one()
        if row is None:
            return None
        s = Settle(row_id=int(row["id"]), key_id=row["key_id"],
                   worst_usd=float(row["worst_usd"] or 0.0), cost_usd=float(totals[4]),
                   status=200, input_tokens=int(totals[0]), output_tokens=int(totals[1]),
                   cache_creation_input_tokens=int(totals[2]),
                   cache_read_input_tokens=int(totals[3]), queued_s=0.0, ttft_s=None,
                   duration_s=max(0.0, at - float(row["started_at"])), upstream_errors=0)
        return s if self.settle_requests([s]) else None
