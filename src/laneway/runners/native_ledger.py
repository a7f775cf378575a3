"""Native batches in the ledger: the SQL of the batch lifecycle (SQLAlchemy Core).

Synchronous and short, like :class:`laneway.store.Store`'s methods: async code calls
them through :class:`laneway.store.AsyncStore`. Written against the tables of
:mod:`laneway.store.schema` only, in SQL that SQLite and PostgreSQL both run.

The lifecycle of one batch row (``batches.status``):

``submitting``
    written, with its jobs moved from ``claimed`` to ``submitted`` (``jobs.batch_id``
    set), in one transaction *before* ``create`` is called (:func:`begin_batch`);
``submitted``
    the provider's id stored the moment ``create`` returns (:func:`set_submitted`);
``canceling``
    laneway asked the provider to cancel it;
``ended``
    its results are all filed (:func:`end_batch`);
``lost``
    ``create`` never took effect, or the provider no longer knows the batch: its
    unfinished jobs went back to ``pending`` (:func:`abandon_batch`).

A row is owned by one worker (``claimed_by``); a worker only polls, recovers or ends
the rows it owns (:func:`own_batches`), so two workers never both decide a batch's fate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from laneway.store import Store
from laneway.store import schema as S

SUBMITTING, SUBMITTED, CANCELING, ENDED, LOST = (
    "submitting", "submitted", "canceling", "ended", "lost")
#: Rows whose batch may still be running at the provider.
ACTIVE = (SUBMITTING, SUBMITTED, CANCELING)

_B = S.batches.c
_J = S.jobs.c
_PAGE = 1000


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
    counts: dict[str, int] | None
    claimed_by: str | None


@dataclass(frozen=True, slots=True)
class Member:
    """A job still waiting for its result from a batch."""

    seq: int
    model: str
    attempts: int


def _row(r: Any) -> BatchRow:
    return BatchRow(
        id=r["id"], run_id=r["run_id"], provider_batch_id=r["provider_batch_id"],
        status=r["status"], request_count=int(r["request_count"]), bytes=int(r["bytes"]),
        created_at=float(r["created_at"]), submitted_at=r["submitted_at"],
        ended_at=r["ended_at"], counts=json.loads(r["counts"]) if r["counts"] else None,
        claimed_by=r["claimed_by"])


def _has_lease() -> bool:
    # ``lease_until`` on batches comes with a later schema migration; use it if present.
    return "lease_until" in S.batches.c


def _chunks(seqs: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(seqs), _PAGE):
        yield list(seqs[start:start + _PAGE])


# -- submitting ------------------------------------------------------------------------
def begin_batch(store: Store, *, run_id: str, batch_id: str, seqs: Sequence[int],
                size_bytes: int, worker: str, lease_s: float = 300.0) -> bool:
    """Record a submission before ``create``: the row, and the jobs moved to ``submitted``
    (one more attempt each), in one transaction. False (nothing changed) if ``worker``
    no longer holds every one of the claimed jobs ``seqs``."""
    now = time.time()
    values: dict[str, Any] = {
        "id": batch_id, "run_id": run_id, "status": SUBMITTING,
        "request_count": len(seqs), "bytes": size_bytes, "created_at": now,
        "claimed_by": worker}
    if _has_lease():
        values["lease_until"] = now + lease_s
    with store.engine.begin() as conn:
        moved = 0
        for part in _chunks(seqs):
            res = conn.execute(update(S.jobs).where(
                _J.run_id == run_id, _J.seq.in_(part), _J.status == S.CLAIMED,
                _J.claimed_by == worker,
            ).values(status=S.SUBMITTED, batch_id=batch_id, attempts=_J.attempts + 1,
                     lease_until=None, updated_at=now))
            moved += int(res.rowcount or 0)
        if moved != len(set(seqs)):
            conn.rollback()
            return False
        conn.execute(S.batches.insert().values(**values))
    return True


def set_submitted(store: Store, batch_id: str, provider_batch_id: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(S.batches).where(_B.id == batch_id).values(
            provider_batch_id=provider_batch_id, status=SUBMITTED, submitted_at=time.time()))


def set_status(store: Store, batch_id: str, status: str,
               counts: dict[str, int] | None = None) -> None:
    values: dict[str, Any] = {"status": status}
    if counts is not None:
        values["counts"] = json.dumps(counts, sort_keys=True)
    with store.engine.begin() as conn:
        conn.execute(update(S.batches).where(_B.id == batch_id).values(**values))


def end_batch(store: Store, batch_id: str, counts: dict[str, int] | None,
              ended_at: float | None = None) -> int:
    """Mark a batch ended once its results are filed; any of its jobs still waiting
    (none, unless the results file missed some) go back to ``pending``."""
    now = time.time()
    with store.engine.begin() as conn:
        res = conn.execute(update(S.jobs).where(
            _J.batch_id == batch_id, _J.status == S.SUBMITTED,
        ).values(status=S.PENDING, batch_id=None, updated_at=now))
        values: dict[str, Any] = {"status": ENDED, "ended_at": ended_at or now,
                                  "claimed_by": None}
        if counts is not None:
            values["counts"] = json.dumps(counts, sort_keys=True)
        conn.execute(update(S.batches).where(_B.id == batch_id).values(**values))
    return int(res.rowcount or 0)


def abandon_batch(store: Store, batch_id: str, *, refund_attempt: bool = False) -> int:
    """The batch never ran (or is gone): its waiting jobs become ``pending`` again.

    ``refund_attempt``: the batch never reached the provider, so the attempt that
    :func:`begin_batch` counted is taken back.
    """
    now = time.time()
    values: dict[str, Any] = {"status": S.PENDING, "batch_id": None, "updated_at": now}
    if refund_attempt:
        values["attempts"] = _J.attempts - 1  # begin_batch added one
    with store.engine.begin() as conn:
        res = conn.execute(update(S.jobs).where(
            _J.batch_id == batch_id, _J.status == S.SUBMITTED,
        ).values(**values))
        conn.execute(update(S.batches).where(_B.id == batch_id).values(
            status=LOST, ended_at=now, claimed_by=None))
    return int(res.rowcount or 0)


# -- owning and reading ----------------------------------------------------------------
def own_batches(store: Store, run_id: str, *, worker: str, lease_s: float = 300.0
                ) -> list[BatchRow]:
    """Take (or keep) ownership of the run's active batches that nobody else holds, and
    return the ones ``worker`` owns, oldest first."""
    now = time.time()
    free: list[ColumnElement[bool]] = [_B.claimed_by.is_(None), _B.claimed_by == worker]
    values: dict[str, Any] = {"claimed_by": worker}
    if _has_lease():
        lease = S.batches.c["lease_until"]
        free.append(lease < now)
        values["lease_until"] = now + lease_s
    with store.engine.begin() as conn:
        conn.execute(update(S.batches).where(
            _B.run_id == run_id, _B.status.in_(ACTIVE), or_(*free)).values(**values))
        rows = conn.execute(select(S.batches).where(
            _B.run_id == run_id, _B.status.in_(ACTIVE), _B.claimed_by == worker,
        ).order_by(_B.created_at)).mappings().all()
    return [_row(r) for r in rows]


def run_batches(store: Store, run_id: str) -> list[BatchRow]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(S.batches).where(_B.run_id == run_id)
                            .order_by(_B.created_at)).mappings().all()
    return [_row(r) for r in rows]


def known_provider_ids(store: Store, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that some batch row (of any run) already holds."""
    if not ids:
        return set()
    with store.engine.connect() as conn:
        return {str(i) for i in conn.scalars(select(_B.provider_batch_id).where(
            _B.provider_batch_id.in_(list(ids))))}


def members(store: Store, run_id: str, batch_id: str) -> dict[int, Member]:
    """The jobs of a batch still waiting for a result, by seq."""
    q = select(_J.seq, _J.model, _J.attempts).where(
        _J.run_id == run_id, _J.batch_id == batch_id, _J.status == S.SUBMITTED)
    with store.engine.connect() as conn:
        return {int(s): Member(int(s), str(m), int(a)) for s, m, a in conn.execute(q)}


def submitted_params(store: Store, run_id: str, batch_ids: Sequence[str]
                     ) -> list[dict[str, Any]]:
    """The params of jobs waiting in these batches (to count what they may still cost)."""
    out: list[dict[str, Any]] = []
    if not batch_ids:
        return out
    with store.engine.connect() as conn:
        for params in conn.scalars(select(_J.params).where(
                _J.run_id == run_id, _J.status == S.SUBMITTED,
                _J.batch_id.in_(list(batch_ids)))):
            out.append(json.loads(params))
    return out


def requeue(store: Store, run_id: str, batch_id: str, seqs: Sequence[int]) -> int:
    """Send jobs of a batch again: ``submitted`` back to ``pending``."""
    now = time.time()
    moved = 0
    with store.engine.begin() as conn:
        for part in _chunks(seqs):
            res = conn.execute(update(S.jobs).where(
                _J.run_id == run_id, _J.seq.in_(part), _J.batch_id == batch_id,
                _J.status == S.SUBMITTED,
            ).values(status=S.PENDING, batch_id=None, updated_at=now))
            moved += int(res.rowcount or 0)
    return moved


def unsent_seqs(store: Store, run_id: str) -> list[int]:
    """Jobs not in any batch and not final (``pending``, or ``claimed`` by someone)."""
    q = select(_J.seq).where(_J.run_id == run_id, _J.status.in_((S.PENDING, S.CLAIMED)))
    with store.engine.connect() as conn:
        return [int(s) for s in conn.scalars(q.order_by(_J.seq))]


def unfinished_params(store: Store, run_id: str) -> Iterator[dict[str, Any]]:
    """The params of every job not final yet, page by page in input order."""
    last = -1
    while True:
        q = (select(_J.seq, _J.params).where(
            _J.run_id == run_id, _J.seq > last, _J.status.not_in(S.FINAL))
            .order_by(_J.seq).limit(_PAGE))
        with store.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return
        for _seq, params in rows:
            yield json.loads(params)
        last = int(rows[-1][0])


def usage_by_model(store: Store, run_id: str) -> list[tuple[str, int, int, int, int]]:
    """``(model, input, output, cache write, cache read)`` tokens of succeeded jobs."""
    q = (select(_J.model, func.coalesce(func.sum(_J.input_tokens), 0),
                func.coalesce(func.sum(_J.output_tokens), 0),
                func.coalesce(func.sum(_J.cache_creation_input_tokens), 0),
                func.coalesce(func.sum(_J.cache_read_input_tokens), 0))
         .where(_J.run_id == run_id, _J.status == S.SUCCEEDED).group_by(_J.model))
    with store.engine.connect() as conn:
        return [(str(m), int(i), int(o), int(w), int(r)) for m, i, o, w, r in conn.execute(q)]


def batch_durations_s(store: Store, *, provider: str, limit: int = 20) -> list[float]:
    """How long the last ended batches took, submission to end, for this provider kind."""
    q = (select(_B.ended_at - _B.submitted_at)
         .select_from(S.batches.join(S.runs, S.runs.c.id == _B.run_id))
         .where(_B.status == ENDED, _B.submitted_at.is_not(None),
                and_(_B.ended_at.is_not(None), S.runs.c.provider == provider))
         .order_by(_B.ended_at.desc()).limit(limit))
    with store.engine.connect() as conn:
        return [float(d) for d in conn.scalars(q) if d is not None]


def cancel_unsent(store: Store, run_id: str) -> int:
    """A canceled run: jobs not sent (``pending``, or ``claimed`` under a lease that ran
    out) become ``canceled``. Jobs a live worker holds are left to finish: their
    requests are already on the way and will be billed, so their results are kept."""
    now = time.time()
    sendable = or_(_J.status == S.PENDING, and_(_J.status == S.CLAIMED, _J.lease_until < now))
    with store.engine.begin() as conn:
        res = conn.execute(update(S.jobs).where(_J.run_id == run_id, sendable).values(
            status=S.CANCELED, result='{"type":"canceled"}', claimed_by=None,
            lease_until=None, batch_id=None, mode="canceled", updated_at=now,
            finished_at=now))
    return int(res.rowcount or 0)
