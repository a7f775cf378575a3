"""A run looked into, mixed into the store: its timeline (what finished when, drawn from
the jobs' own rows, and the samples its runner wrote), its jobs page by page, one job
whole, and the re-send of the jobs that errored or expired.

Pages are keyset pages on the jobs' input order (``seq``): each walks the (run, seq) key
or the (run, status, seq) index from where the last one stopped, so the thousandth page
of a 100,000-job run costs what the first does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Integer,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    update,
)

from laneway.store import schema as S
from laneway.store.statuses import JobStatus

_J = S.jobs.c
_RS = S.run_samples.c

#: Jobs a run's page can send again: what failed at the API or ran out of time.
RESENDABLE: tuple[JobStatus, ...] = (JobStatus.ERRORED, JobStatus.EXPIRED)
#: Outcomes the throughput counts (a cancel ends jobs that were never sent).
_SENT_OUTCOMES = (JobStatus.SUCCEEDED, JobStatus.ERRORED, JobStatus.EXPIRED)
#: Buckets a timeline is cut into at most.
TIMELINE_BUCKETS = 60
#: How much of an error message a job page lists (the job itself has it whole).
_ERROR_PREVIEW = 160


@dataclass(frozen=True, slots=True)
class RunSample:
    """One sample of a running run, written by its runner."""

    run_id: str
    at: float
    done: int
    in_flight: int
    #: The most used bucket's use (0 = full, 1 = spent); None when no limit is known.
    limit_use: float | None
    limit_use_by_bucket: dict[str, float]


def bucket_width_s(span_s: float, buckets: int = TIMELINE_BUCKETS) -> float:
    """A round width (1, 2, 5 x 10^n seconds, at least 1) cutting ``span_s`` into at most
    ``buckets`` buckets."""
    raw = max(1.0, span_s / max(1, buckets))
    scale = 10.0 ** math.floor(math.log10(raw))
    for m in (1.0, 2.0, 5.0, 10.0):
        if raw <= m * scale + 1e-9:
            return m * scale
    return 10.0 * scale


def _not_ingest() -> ColumnElement[bool]:
    """Not a bad input line (those are recorded errored at ingest, never sent)."""
    return or_(_J.mode.is_(None), _J.mode != "ingest")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RunViews:
    """Reads for a run's page, and the re-send; mixed into the store."""

    engine: Engine

    # -- samples -------------------------------------------------------------------------
    def add_run_sample(self, sample: RunSample) -> None:
        with self.engine.begin() as conn:
            conn.execute(S.run_samples.insert().values(
                run_id=sample.run_id, at=sample.at, done=sample.done,
                in_flight=sample.in_flight, limit_use=sample.limit_use,
                limit_use_by_bucket=json.dumps(sample.limit_use_by_bucket)))

    # -- the timeline --------------------------------------------------------------------
    def run_timeline(self, run_id: str, *, buckets: int = TIMELINE_BUCKETS) -> dict[str, Any]:
        """What the run's jobs did over its time, from the ledger alone.

        ``start``/``end``: the first and last job outcome (or sample); ``bucket_s``; and
        ``buckets``, oldest first, every one from ``start`` to ``end`` (empty ones
        included): ``t`` (its start), ``succeeded``, ``errored`` (errored or expired),
        ``input_tokens``, ``output_tokens``, ``cost_usd``, and from the runner's samples
        ``limit_use`` (the peak, or None) and ``in_flight`` (the peak, or None).

        One read of each table, by the second (the outcomes' index covers it), folded
        into buckets here: no query first for the run's span.
        """
        outcomes, samples = self._by_second(run_id)
        seconds = [s for s, *_ in outcomes] + [s for s, *_ in samples]
        if not seconds:
            return {"start": None, "end": None, "bucket_s": 1.0, "buckets": []}
        start, end = float(min(seconds)), float(max(seconds))
        width = bucket_width_s(end - start, buckets)
        start = math.floor(start / width) * width
        rows: list[dict[str, Any]] = [
            {"t": start + i * width, "succeeded": 0, "errored": 0, "input_tokens": 0,
             "output_tokens": 0, "cost_usd": 0.0, "limit_use": None, "in_flight": None}
            for i in range(int((end - start) // width) + 1)]
        for sec, ok, bad, tin, tout, cost in outcomes:
            row = rows[int((sec - start) // width)]
            row["succeeded"] += ok
            row["errored"] += bad
            row["input_tokens"] += tin
            row["output_tokens"] += tout
            row["cost_usd"] += cost
        for sec, use, flight in samples:
            row = rows[int((sec - start) // width)]
            if use is not None:
                row["limit_use"] = max(use, row["limit_use"] or 0.0)
            row["in_flight"] = max(flight, row["in_flight"] or 0)
        for row in rows:
            row["cost_usd"] = round(row["cost_usd"], 8)
        return {"start": start, "end": end, "bucket_s": width, "buckets": rows}

    def _second(self, column: Any) -> Any:
        # PostgreSQL's CAST to integer rounds; SQLite's truncates (floor, for times > 0).
        if self.engine.dialect.name == "postgresql":
            return cast(func.floor(column), Integer)
        return cast(column, Integer)

    def _by_second(self, run_id: str) -> tuple[list[tuple[int, int, int, int, int, float]],
                                                list[tuple[int, float | None, int]]]:
        sec = self._second(_J.finished_at).label("s")
        outcomes = (select(sec,
                           func.sum(case((_J.status == JobStatus.SUCCEEDED, 1), else_=0)),
                           func.sum(case((_J.status != JobStatus.SUCCEEDED, 1), else_=0)),
                           func.coalesce(func.sum(_J.input_tokens), 0),
                           func.coalesce(func.sum(_J.output_tokens), 0),
                           cast(func.coalesce(func.sum(_J.cost_usd), 0.0), Float))
                    .where(_J.run_id == run_id, _J.status.in_(_SENT_OUTCOMES), _not_ingest(),
                           _J.finished_at.is_not(None))
                    .group_by(sec))
        ssec = self._second(_RS.at).label("s")
        samples = (select(ssec, func.max(_RS.limit_use), func.max(_RS.in_flight))
                   .where(_RS.run_id == run_id).group_by(ssec))
        with self.engine.connect() as conn:
            return ([(int(s), int(ok or 0), int(bad or 0), int(i or 0), int(o or 0),
                      float(c or 0.0)) for s, ok, bad, i, o, c in conn.execute(outcomes)],
                    [(int(s), None if u is None else round(float(u), 4), int(f or 0))
                     for s, u, f in conn.execute(samples)])

    # -- jobs ----------------------------------------------------------------------------
    def job_page(self, run_id: str, *, statuses: Sequence[str] = (), search: str = "",
                 after_seq: int | None = None, before_seq: int | None = None,
                 limit: int = 50) -> tuple[list[dict[str, Any]], bool]:
        """Up to ``limit`` jobs in input order after ``after_seq`` (or the ``limit`` just
        before ``before_seq``), of ``statuses`` (all if empty) whose id contains
        ``search``; and whether there are more in that direction."""
        cols = (_J.seq, _J.custom_id, _J.status, _J.model, _J.attempts, _J.mode,
                _J.input_tokens, _J.output_tokens, _J.cost_usd, _J.error_type,
                func.substr(_J.error_message, 1, _ERROR_PREVIEW).label("error_message"),
                _J.finished_at)
        q = select(*cols).where(_J.run_id == run_id)
        if statuses:
            q = q.where(_J.status.in_(list(statuses)))
        if search:
            q = q.where(_J.custom_id.like(f"%{_like_escape(search)}%", escape="\\"))
        backwards = before_seq is not None and after_seq is None
        if backwards:
            q = q.where(_J.seq < before_seq).order_by(_J.seq.desc())
        else:
            if after_seq is not None:
                q = q.where(_J.seq > after_seq)
            q = q.order_by(_J.seq)
        with self.engine.connect() as conn:
            found = [dict(r) for r in conn.execute(q.limit(limit + 1)).mappings()]
        more = len(found) > limit
        found = found[:limit]
        if backwards:
            found.reverse()
        return found, more

    def job_detail(self, run_id: str, custom_id: str) -> dict[str, Any] | None:
        """One job's row, its request (``params``) and result parsed."""
        q = select(S.jobs).where(_J.run_id == run_id, _J.custom_id == custom_id)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            return None
        out = {k: row[k] for k in (
            "seq", "custom_id", "line", "status", "model", "attempts", "rate_limited",
            "mode", "batch_id", "input_tokens", "output_tokens", "cache_creation_input_tokens",
            "cache_read_input_tokens", "cost_usd", "priced", "error_type", "error_message",
            "updated_at", "finished_at")}
        out["params"] = json.loads(row["params"]) if row["params"] else {}
        out["result"] = json.loads(row["result"]) if row["result"] else None
        return out

    def is_gateway_batch(self, run_id: str) -> bool:
        """Whether the run is a Message Batch made through the gateway (deleted or not)."""
        q = select(S.gateway_batches.c.seq).where(S.gateway_batches.c.id == run_id)
        with self.engine.connect() as conn:
            return conn.execute(q.limit(1)).first() is not None

    def resendable(self, run_id: str) -> int:
        """Jobs :meth:`resend` would send again."""
        q = select(func.count()).where(_J.run_id == run_id, _J.status.in_(RESENDABLE),
                                       _not_ingest())
        with self.engine.connect() as conn:
            return int(conn.scalar(q) or 0)

    def resend(self, run_id: str) -> int:
        """Make the run's errored and expired jobs pending again (bad input lines stay
        errored: sending them cannot succeed). Their attempts are kept, so a job that
        used all its tries gets one more, not a full set; usage and cost stay until a
        new outcome replaces them. Returns the number of jobs made pending."""
        with self.engine.begin() as conn:
            res = conn.execute(update(S.jobs).where(
                and_(_J.run_id == run_id, _J.status.in_(RESENDABLE), _not_ingest())).values(
                status=JobStatus.PENDING, result=None, error_type=None, error_message=None,
                finished_at=None, claimed_by=None, lease_until=None, batch_id=None,
                mode=None, updated_at=time.time()))
        return int(res.rowcount or 0)
