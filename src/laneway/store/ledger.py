"""The durable ledger: runs and their jobs, over SQLite (default) or PostgreSQL.

Every method is synchronous and short; async code calls them through
:class:`laneway.store.writer.AsyncStore`, which runs them on one thread so the event
loop never waits on the disk. The same SQLAlchemy Core code serves both databases.
Claiming, leases and results are in :mod:`laneway.store.queue` (results are written
by ``finish`` in groups, each recorded once); what a run's page reads in
:mod:`laneway.store.runviews`; native batches in
:mod:`laneway.store.batches`; whole-run queries in :mod:`laneway.store.runqueries`;
shared rate-limit pauses in :mod:`laneway.store.pauses`; the gateway's client keys
in :mod:`laneway.store.keys`, its traffic in :mod:`laneway.store.traffic` (over a
window: :mod:`laneway.store.traffic_history`) and its
Message Batches in :mod:`laneway.store.gateway_batches`; who holds claims in
:mod:`laneway.store.holders`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, and_, create_engine, event, func, select, update
from sqlalchemy.exc import DatabaseError, IntegrityError

from laneway.errors import DiskFullError, InputError, StoreError
from laneway.jobs.formats import BadLine, Job
from laneway.store import schema
from laneway.store.batches import BatchLedger
from laneway.store.diskfull import is_disk_full
from laneway.store.gateway_batches import GatewayBatchLedger
from laneway.store.holders import HolderLedger
from laneway.store.keys import KeyLedger
from laneway.store.migrations import migrate
from laneway.store.queue import JobQueue
from laneway.store.reservations import ReservationLedger
from laneway.store.run_budget import RunBudgetLedger
from laneway.store.runqueries import RunQueries
from laneway.store.runviews import RunViews
from laneway.store.settings import StoreSettings
from laneway.store.statuses import CLOSED_RUNS, FINAL_JOBS, JobStatus, RunStatus
from laneway.store.traffic_history import TrafficHistory

S = schema

@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    fingerprint: str
    options: dict[str, Any]
    mode: str
    provider: str
    status: RunStatus
    total: int
    ingested_lines: int
    ingest_done: bool
    input_path: str | None
    created_at: float
    budget_usd: float | None
    deadline_at: float | None
    output_path: str | None
    output_written_at: float | None
    updated_at: float
    #: Why the run stopped short, e.g. where its ingest failed.
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Counts:
    total: int
    by_status: dict[str, int]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced: int

    def __getitem__(self, status: str) -> int:
        return self.by_status.get(status, 0)

    @property
    def final(self) -> int:
        return sum(self.by_status.get(s, 0) for s in FINAL_JOBS)

    @property
    def remaining(self) -> int:
        return self.total - self.final


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers never block the writer. synchronous=NORMAL: a commit survives the
    # process dying (SIGKILL); only an OS crash can lose the last few commits.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class Store(JobQueue, BatchLedger, RunQueries, RunViews, KeyLedger, TrafficHistory,
            GatewayBatchLedger, ReservationLedger, RunBudgetLedger, HolderLedger):
    """One ledger. Open with :func:`open_store`."""

    def __init__(self, engine: Engine, settings: StoreSettings) -> None:
        self.engine = engine
        self.settings = settings
        #: Worker ids recorded in ``holders`` as this process (see :mod:`.holders`).
        self._held_as: set[str] = set()

    def close(self) -> None:
        self.engine.dispose()

    # -- runs ----------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(S.runs).where(S.runs.c.id == run_id)).mappings().first()
        return _run_row(row) if row else None

    def list_runs(self, *, limit: int = 50) -> list[RunRow]:
        q = select(S.runs).order_by(S.runs.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_run_row(r) for r in conn.execute(q).mappings()]

    def open_runs(self) -> list[RunRow]:
        """Runs not closed (see :data:`~laneway.store.statuses.CLOSED_RUNS`), oldest first:
        the work of a worker."""
        q = (select(S.runs).where(S.runs.c.status.not_in(CLOSED_RUNS))
             .order_by(S.runs.c.created_at, S.runs.c.id))
        with self.engine.connect() as conn:
            return [_run_row(r) for r in conn.execute(q).mappings()]

    def create_run(
        self, *, run_id: str, fingerprint: str, options: dict[str, Any], mode: str,
        provider: str, input_path: str | None, input_sha256: str | None,
        budget_usd: float | None = None, deadline_at: float | None = None,
    ) -> RunRow:
        now = time.time()
        try:
            with self.engine.begin() as conn:
                conn.execute(S.runs.insert().values(
                    id=run_id, created_at=now, updated_at=now, input_path=input_path,
                    input_sha256=input_sha256, fingerprint=fingerprint,
                    options=json.dumps(options, sort_keys=True), mode=mode, provider=provider,
                    status=RunStatus.INGESTING, total=0, ingested_lines=0, ingest_done=False,
                    budget_usd=budget_usd, deadline_at=deadline_at,
                ))
        except IntegrityError:
            pass  # another worker created it first; same fingerprint is checked by caller
        run = self.get_run(run_id)
        assert run is not None
        return run

    def update_run(self, run_id: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(update(S.runs).where(S.runs.c.id == run_id).values(**values))

    def failed_ingests(self, input_path: str) -> list[RunRow]:
        """Runs of ``input_path`` whose ingest failed (``RunStatus.INGEST_FAILED``)."""
        q = select(S.runs).where(S.runs.c.input_path == input_path,
                                 S.runs.c.status == RunStatus.INGEST_FAILED)
        with self.engine.connect() as conn:
            return [_run_row(r) for r in conn.execute(q).mappings()]

    def sent_jobs(self, run_id: str) -> int:
        """Jobs of the run that were ever handed to a worker or sent (not only ingested)."""
        j = S.jobs.c
        q = select(func.count()).where(j.run_id == run_id, (
            j.status.in_((JobStatus.CLAIMED, JobStatus.SUBMITTED)) | (j.attempts > 0)
            | (j.status.in_(FINAL_JOBS) & (j.mode.is_(None) | (j.mode != "ingest")))))
        with self.engine.connect() as conn:
            return int(conn.scalar(q) or 0)

    def delete_run(self, run_id: str) -> None:
        """Remove a run, its jobs, events and samples (one whose jobs were never sent)."""
        with self.engine.begin() as conn:
            for table in (S.jobs, S.events, S.run_samples):
                conn.execute(table.delete().where(table.c.run_id == run_id))
            conn.execute(S.runs.delete().where(S.runs.c.id == run_id))

    # -- ingest --------------------------------------------------------------------------
    def add_jobs(
        self, run_id: str, items: Sequence[Job | BadLine], *, first_seq: int, last_line: int,
        path: str | None = None,
    ) -> None:
        """Insert a chunk of jobs (in input order) and advance the ingest mark, atomically.

        A duplicate ``custom_id`` raises :class:`InputError` naming both lines.
        """
        now = time.time()
        rows: list[dict[str, Any]] = []
        for i, item in enumerate(items):
            # Every row has the same keys: an executemany INSERT takes its columns from
            # the first row and would drop a later bad line's result.
            base = {
                "run_id": run_id, "seq": first_seq + i, "custom_id": item.custom_id,
                "line": item.line, "attempts": 0, "rate_limited": 0, "updated_at": now,
                "result": None, "error_type": None, "error_message": None,
                "finished_at": None, "mode": None,
            }
            if isinstance(item, Job):
                rows.append({**base, "params": json.dumps(item.params, separators=(",", ":")),
                             "model": item.params.get("model", ""), "status": JobStatus.PENDING})
            else:
                from laneway.wire.batches import errored

                result = errored("invalid_request_error", str(item.error))
                rows.append({**base, "params": "{}", "model": "", "status": JobStatus.ERRORED,
                             "result": json.dumps(result), "error_type": "invalid_input",
                             "error_message": str(item.error), "finished_at": now,
                             "mode": "ingest"})
        try:
            with self.engine.begin() as conn:
                if rows:
                    conn.execute(S.jobs.insert(), rows)
                conn.execute(update(S.runs).where(S.runs.c.id == run_id).values(
                    total=first_seq + len(rows), ingested_lines=last_line, updated_at=now))
        except IntegrityError:
            raise self._duplicate(run_id, items, path) from None

    def _duplicate(self, run_id: str, items: Sequence[Job | BadLine], path: str | None
                   ) -> InputError:
        seen: dict[str, int] = {}
        for item in items:
            if item.custom_id in seen:
                return InputError(f"duplicate id {item.custom_id!r} (first at line "
                                  f"{seen[item.custom_id]})", path=path, line=item.line,
                                  field="custom_id")
            seen[item.custom_id] = item.line
        ids = list(seen)
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows = conn.execute(select(S.jobs.c.custom_id, S.jobs.c.line).where(
                    S.jobs.c.run_id == run_id, S.jobs.c.custom_id.in_(ids[start:start + 500])
                )).all()
                if rows:
                    cid, first = rows[0]
                    return InputError(f"duplicate id {cid!r} (first at line {first})",
                                      path=path, line=seen[cid], field="custom_id")
        return InputError("duplicate id", path=path)

    # -- progress ------------------------------------------------------------------------
    def counts(self, run_id: str) -> Counts:
        q = (select(S.jobs.c.status, func.count(),
                    func.coalesce(func.sum(S.jobs.c.input_tokens), 0),
                    func.coalesce(func.sum(S.jobs.c.output_tokens), 0),
                    func.coalesce(func.sum(S.jobs.c.cost_usd), 0.0),
                    func.sum(_unpriced()))
             .where(S.jobs.c.run_id == run_id).group_by(S.jobs.c.status))
        by: dict[str, int] = {}
        tin = tout = unpriced = 0
        cost = 0.0
        with self.engine.connect() as conn:
            for status, n, i, o, c, u in conn.execute(q).all():
                by[status] = int(n)
                tin += int(i)
                tout += int(o)
                cost += float(c)
                unpriced += int(u or 0)
        return Counts(sum(by.values()), by, tin, tout, cost, unpriced)

    def last_change(self, run_id: str) -> float:
        """When any job of the run last changed (0 if none did)."""
        q = select(func.max(S.jobs.c.updated_at)).where(S.jobs.c.run_id == run_id)
        with self.engine.connect() as conn:
            return float(conn.scalar(q) or 0.0)

    def unpriced_models(self, run_id: str) -> list[str]:
        q = (select(S.jobs.c.model).distinct()
             .where(S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.SUCCEEDED,
                    S.jobs.c.priced.is_(False)))
        with self.engine.connect() as conn:
            return sorted(str(m) for m in conn.scalars(q))

    def iter_results(self, run_id: str, *, page: int = 5000
                     ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every job's result in input order (unfinished jobs are skipped), page by page."""
        last = -1
        while True:
            q = (select(S.jobs.c.seq, S.jobs.c.custom_id, S.jobs.c.result)
                 .where(S.jobs.c.run_id == run_id, S.jobs.c.seq > last,
                        S.jobs.c.result.is_not(None))
                 .order_by(S.jobs.c.seq).limit(page))
            with self.engine.connect() as conn:
                rows = conn.execute(q).all()
            if not rows:
                return
            for _seq, custom_id, result in rows:
                yield custom_id, json.loads(result)
            last = rows[-1][0]

    # -- events --------------------------------------------------------------------------
    def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(S.events.insert().values(run_id=run_id, at=time.time(), kind=kind,
                                                  data=json.dumps(data)))

    def events_since(self, run_id: str, *, after_id: int = 0, kind: str | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        q = select(S.events).where(S.events.c.run_id == run_id, S.events.c.id > after_id)
        if kind is not None:
            q = q.where(S.events.c.kind == kind)
        q = q.order_by(S.events.c.id).limit(limit)
        with self.engine.connect() as conn:
            return [{"id": r.id, "at": r.at, "kind": r.kind, "data": json.loads(r.data)}
                    for r in conn.execute(q)]


def _unpriced() -> Any:
    from sqlalchemy import case

    return case((and_(S.jobs.c.status == JobStatus.SUCCEEDED, S.jobs.c.priced.is_(False)), 1),
                else_=0)


def _run_row(row: Any) -> RunRow:
    return RunRow(
        id=row["id"], fingerprint=row["fingerprint"], options=json.loads(row["options"]),
        mode=row["mode"], provider=row["provider"], status=RunStatus(row["status"]),
        total=row["total"],
        ingested_lines=row["ingested_lines"], ingest_done=bool(row["ingest_done"]),
        input_path=row["input_path"], created_at=row["created_at"],
        budget_usd=row["budget_usd"], deadline_at=row["deadline_at"],
        output_path=row["output_path"], output_written_at=row["output_written_at"],
        updated_at=row["updated_at"], note=row["note"],
    )


def open_store(settings: StoreSettings | str | None = None) -> Store:
    """Open (creating and migrating if needed) the ledger at ``settings``."""
    if not isinstance(settings, StoreSettings):
        settings = StoreSettings.from_dsn(settings)
    try:
        if settings.kind == "sqlite":
            assert settings.path is not None
            settings.path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(settings.url, connect_args={"check_same_thread": False,
                                                               "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # Behind a pooler in transaction mode, no server-side prepared statements.
            args = {"prepare_threshold": None} if settings.pooled else {}
            engine = create_engine(settings.url, pool_pre_ping=True, pool_size=5,
                                   connect_args=args)
        migrate(engine)
    except DatabaseError as exc:  # cannot connect, "file is not a database", disk full
        if is_disk_full(exc):
            raise DiskFullError(f"cannot write the ledger {settings}") from None
        raise StoreError(f"cannot open the ledger {settings}: {exc.orig}") from None
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskFullError(f"cannot write the ledger {settings}") from None
        raise StoreError(f"cannot open the ledger {settings}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"cannot open the ledger {settings}: {exc.name} is not installed "
            "(pip install 'laneway[postgres]')"
        ) from None
    return Store(engine, settings)
