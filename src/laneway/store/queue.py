"""The job queue inside the ledger: claims under a lease, and results recorded once.

Several workers (processes, perhaps on several hosts) may share one run on PostgreSQL:

- **claim** takes the first sendable jobs in input order and marks them ``claimed`` by
  the worker until ``lease_until`` (an UPDATE ... RETURNING fed by a CTE that picks the
  rows). On PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so workers
  claiming at the same moment get different jobs and never wait on each other. A job
  is sendable when it is pending, or claimed under a lease that has run out (its worker
  died or hung): that is how a dead worker's jobs come back. Leases are timed by the
  database's clock on PostgreSQL, so workers on hosts whose clocks disagree still
  agree on when a lease ends.
- **extend_lease** keeps a live worker's jobs; it only touches jobs still claimed by
  that worker (one reclaimed by another is not taken back).
- **finish** records a final outcome only if the job is not final yet, whoever holds
  the claim: a late result from a worker whose lease ran out is a real, paid-for answer,
  so it is kept if nobody recorded one first, and ignored (not counted twice) if
  somebody did. It is one statement for a whole group of results on either database.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, Connection, Engine, Select, and_, func, select, text, update
from sqlalchemy.sql.elements import ColumnElement

from laneway.store import run_budget
from laneway.store import schema as S
from laneway.store.holders import HolderLedger
from laneway.store.statuses import FINAL_JOBS, JobStatus, RunStatus


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    seq: int
    custom_id: str
    params: dict[str, Any]
    model: str
    attempts: int
    rate_limited: int


@dataclass(frozen=True, slots=True)
class Finished:
    """The final outcome of one job, as :meth:`JobQueue.finish` records it."""

    run_id: str
    seq: int
    status: JobStatus
    result: dict[str, Any]
    attempts: int
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float | None = None
    error_type: str | None = None
    error_message: str | None = None
    mode: str = "realtime"
    #: The model that answered (the answer's ``model``), and what the usage would have
    #: cost on the model asked for when another answered.
    answered_model: str | None = None
    asked_cost_usd: float | None = None
    #: The worst case reserved of the run's budget for it, settled as it is recorded.
    reserved_usd: float = 0.0


#: The columns :meth:`JobQueue.finish` writes, with their PostgreSQL types.
_FINISH_COLUMNS = (
    ("run_id", "text"), ("seq", "int"), ("status", "text"), ("result", "text"),
    ("attempts", "int"), ("input_tokens", "int"), ("output_tokens", "int"),
    ("cache_creation_input_tokens", "int"), ("cache_read_input_tokens", "int"),
    ("cost_usd", "float8"), ("priced", "bool"), ("error_type", "text"),
    ("error_message", "text"), ("mode", "text"), ("answered_model", "text"),
    ("asked_cost_usd", "float8"),
)
_SET_COLUMNS = [name for name, _ in _FINISH_COLUMNS if name not in ("run_id", "seq")]
_FINAL_SQL = ", ".join(f"'{s}'" for s in FINAL_JOBS)

# One statement per database for a whole group: the group travels as one JSON parameter.
_FINISH_PG = text(
    f"UPDATE {S.jobs.name} AS j SET "
    + ", ".join(f"{c} = v.{c}" for c in _SET_COLUMNS)
    + ", claimed_by = NULL, lease_until = NULL, updated_at = :now, finished_at = :now"
    " FROM jsonb_to_recordset(CAST(:items AS jsonb)) AS v("
    + ", ".join(f"{c} {t}" for c, t in _FINISH_COLUMNS)
    + f") WHERE j.run_id = v.run_id AND j.seq = v.seq AND j.status NOT IN ({_FINAL_SQL})"
    " RETURNING j.run_id, j.seq"
)
_FINISH_SQLITE = text(
    f"UPDATE {S.jobs.name} SET "
    + ", ".join(f"{c} = json_extract(v.value, '$.{c}')" for c in _SET_COLUMNS)
    + ", claimed_by = NULL, lease_until = NULL, updated_at = :now, finished_at = :now"
    " FROM json_each(:items) AS v"
    f" WHERE {S.jobs.name}.run_id = json_extract(v.value, '$.run_id')"
    f" AND {S.jobs.name}.seq = json_extract(v.value, '$.seq')"
    f" AND {S.jobs.name}.status NOT IN ({_FINAL_SQL})"
    f" RETURNING {S.jobs.name}.run_id, {S.jobs.name}.seq"
)
#: Results per statement (keeps one statement's JSON to a few MB).
_FINISH_CHUNK = 1000


def _finish_row(f: Finished) -> dict[str, Any]:
    return {
        "run_id": f.run_id, "seq": f.seq, "status": f.status,
        "result": json.dumps(f.result, separators=(",", ":")), "attempts": f.attempts,
        "input_tokens": f.input_tokens, "output_tokens": f.output_tokens,
        "cache_creation_input_tokens": f.cache_creation_input_tokens,
        "cache_read_input_tokens": f.cache_read_input_tokens, "cost_usd": f.cost_usd,
        "priced": f.cost_usd is not None, "error_type": f.error_type,
        "error_message": f.error_message, "mode": f.mode,
        "answered_model": f.answered_model, "asked_cost_usd": f.asked_cost_usd,
    }


def lease_clock(engine: Engine) -> ColumnElement[Any] | float:
    """Now, for leases: the database's clock on PostgreSQL, this host's on SQLite."""
    if engine.dialect.name == "postgresql":
        return func.extract("epoch", func.now())
    return time.time()


def run_once(pick: Select[Any], name: str, *, postgres: bool) -> CTE:
    """``pick`` as a CTE that the database computes exactly once.

    Not ``seq IN (subquery)`` nor a derived table: PostgreSQL may rescan those for each
    row it updates, and each rescan of a ``LIMIT ... FOR UPDATE SKIP LOCKED`` locks
    further rows, past the limit. A MATERIALIZED CTE runs once.
    """
    cte = pick.cte(name)
    return cte.prefix_with("MATERIALIZED") if postgres else cte


class JobQueue(HolderLedger):
    """Claiming, leases and results; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # -- claiming ------------------------------------------------------------------------
    def claim(self, run_id: str, *, worker: str, limit: int, lease_s: float,
              statuses: Sequence[JobStatus] = (JobStatus.PENDING,)) -> list[ClaimedJob]:
        """Take up to ``limit`` sendable jobs, in input order, under a lease of ``lease_s``.

        Sendable: claimed by another worker under a lease that has run out (taken
        first: the oldest work), or in ``statuses``. A job ``worker`` itself holds is
        never taken again, however late its lease: it is in this worker's hands (queued,
        or waiting on a 429's retry-after), and sending it again would pay twice. Each
        kind is one statement that walks the (run, status, seq) index, so a claim costs
        the same late in a run of millions as at its start. A run whose ingest failed
        gives nothing (see :data:`laneway.store.schema.INGEST_FAILED`).
        """
        j = S.jobs.c
        now = lease_clock(self.engine)
        kinds = [and_(j.status == JobStatus.CLAIMED, j.lease_until < now, j.claimed_by != worker),
                 j.status == statuses[0] if len(statuses) == 1 else j.status.in_(statuses)]
        rows: list[Any] = []
        self.note_holder(worker)
        with self.engine.begin() as conn:
            run_status = conn.scalar(select(S.runs.c.status).where(S.runs.c.id == run_id))
            if run_status == RunStatus.INGEST_FAILED:
                return []
            for sendable in kinds:
                if len(rows) >= limit:
                    break
                pick = (select(j.seq).where(j.run_id == run_id, sendable)
                        .order_by(j.seq).limit(limit - len(rows)))
                if self.is_postgres:
                    pick = pick.with_for_update(skip_locked=True)
                picked = run_once(pick, "picked", postgres=self.is_postgres)
                rows += conn.execute(
                    update(S.jobs)
                    .where(j.run_id == run_id, j.seq == picked.c.seq)
                    .values(status=JobStatus.CLAIMED, claimed_by=worker,
                            lease_until=now + lease_s, updated_at=time.time())
                    .returning(j.seq, j.custom_id, j.params, j.model, j.attempts,
                               j.rate_limited)).all()
        rows.sort(key=lambda r: int(r.seq))
        return [ClaimedJob(r.seq, r.custom_id, json.loads(r.params), r.model, r.attempts,
                           r.rate_limited) for r in rows]

    def extend_lease(self, run_id: str, seqs: Sequence[int], *, worker: str,
                     lease_s: float) -> int:
        """Renew ``worker``'s lease on those of ``seqs`` it still holds; returns how many."""
        if not seqs:
            return 0
        j = S.jobs.c
        renewed = 0
        with self.engine.begin() as conn:
            for start in range(0, len(seqs), 1000):
                res = conn.execute(update(S.jobs).where(
                    j.run_id == run_id, j.seq.in_(list(seqs[start:start + 1000])),
                    j.status == JobStatus.CLAIMED, j.claimed_by == worker,
                ).values(lease_until=lease_clock(self.engine) + lease_s))
                renewed += int(res.rowcount or 0)
        return renewed

    def renew_leases(self, run_id: str, *, worker: str, lease_s: float) -> int:
        """Renew every lease ``worker`` holds in the run (a heartbeat); returns how many."""
        j = S.jobs.c
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                j.run_id == run_id, j.status == JobStatus.CLAIMED, j.claimed_by == worker,
            ).values(lease_until=lease_clock(self.engine) + lease_s))
        return int(res.rowcount or 0)

    def release(self, run_id: str, seqs: Sequence[int], *, worker: str | None = None,
                attempts: dict[int, tuple[int, int]] | None = None) -> None:
        """Give claimed jobs back (pending again), recording their attempt counts.

        With ``worker``, only jobs that worker still holds are released.
        """
        if not seqs:
            return
        j = S.jobs.c
        now = time.time()
        free = {"status": JobStatus.PENDING, "claimed_by": None, "lease_until": None,
                "updated_at": now}
        cond: list[ColumnElement[bool]] = [j.run_id == run_id, j.status == JobStatus.CLAIMED]
        if worker is not None:
            cond.append(j.claimed_by == worker)
        attempts = attempts or {}
        plain = [s for s in seqs if s not in attempts]
        with self.engine.begin() as conn:
            for start in range(0, len(plain), 1000):
                conn.execute(update(S.jobs).where(
                    *cond, j.seq.in_(plain[start:start + 1000])).values(**free))
            for seq in seqs:
                if seq in attempts:
                    n, limited = attempts[seq]
                    conn.execute(update(S.jobs).where(*cond, j.seq == seq).values(
                        **free, attempts=n, rate_limited=limited))

    def release_all(self, run_id: str, *, worker: str | None = None) -> int:
        """Release every claim of a run (a single-process run starting over after a crash),
        or with ``worker`` every claim of that worker (one that holds none of them now)."""
        cond = [S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.CLAIMED]
        if worker is not None:
            cond.append(S.jobs.c.claimed_by == worker)
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(*cond).values(
                status=JobStatus.PENDING, claimed_by=None, lease_until=None))
        return int(res.rowcount or 0)

    def lease_wait_s(self, run_id: str) -> float | None:
        """Seconds until the first lease of the run runs out (0 if one has); None if none."""
        j = S.jobs.c
        q = select(func.min(j.lease_until) - lease_clock(self.engine)).where(
            j.run_id == run_id, j.status == JobStatus.CLAIMED)
        with self.engine.connect() as conn:
            left = conn.scalar(q)
        return None if left is None else max(0.0, float(left))

    # -- results -------------------------------------------------------------------------
    def finish(self, items: Sequence[Finished], *, on: Connection | None = None) -> list[int]:
        """Record final outcomes in one transaction; returns the seqs that were recorded.

        A job that is already final is left as it is (its seq is not returned), so a
        result is counted once however many workers send it. An item repeated in
        ``items`` counts once (the first). ``on``: a connection of the caller's own (the
        event loop's, see :meth:`laneway.store.writer.AsyncStore.finish_here`), else
        one of the pool's.
        """
        if on is None:
            with self.engine.begin() as conn:
                return self._record(conn, items)
        with on.begin():
            return self._record(on, items)

    def _record(self, conn: Connection, items: Sequence[Finished]) -> list[int]:
        unique: dict[tuple[str, int], Finished] = {}
        for f in items:
            unique.setdefault((f.run_id, f.seq), f)
        if not unique:
            return []
        rows = [_finish_row(f) for f in unique.values()]
        stmt = _FINISH_PG if self.is_postgres else _FINISH_SQLITE
        now = time.time()
        recorded: set[tuple[str, int]] = set()
        for start in range(0, len(rows), _FINISH_CHUNK):
            blob = json.dumps(rows[start:start + _FINISH_CHUNK], separators=(",", ":"))
            recorded.update((str(r), int(s)) for r, s in conn.execute(
                stmt, {"items": blob, "now": now}))
        # The runs' budgets: a recorded result's cost in, every reservation out.
        run_budget.settle(conn, [
            *((f.run_id, f.cost_usd or 0.0) for k, f in unique.items() if k in recorded),
            *((f.run_id, -f.reserved_usd) for f in items)])
        return sorted(seq for _, seq in recorded)
