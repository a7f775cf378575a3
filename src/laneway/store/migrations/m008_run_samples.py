"""Migration ``008_run_samples``: a running run's samples over time (jobs done, requests
in flight, the rate limits' use), so a finished run's page can draw them (see
:mod:`laneway.store.runviews`); and an index on the jobs' outcomes that covers a run's
counts and its timeline, so neither reads the jobs' requests and results.

Frozen, like ``001_initial``: these definitions are this migration's own, not
:mod:`laneway.store.schema`'s. ``checkfirst`` makes it safe to run again after a
migrator that died before recording it (SQLite's DDL commits at once).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

NAME = "008_run_samples"

_metadata = MetaData()

_samples = Table(
    "run_samples", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("done", Integer, nullable=False),
    Column("in_flight", Integer, nullable=False),
    Column("limit_use", Float),
    Column("limit_use_by_bucket", Text),
)
Index("ix_run_samples_run_at", _samples.c.run_id, _samples.c.at)

#: The columns of ``jobs`` the index names (the table itself is 001's).
_jobs = Table(
    "jobs", _metadata,
    Column("run_id", String(200)), Column("status", String(20)), Column("finished_at", Float),
    Column("mode", String(20)), Column("input_tokens", Integer),
    Column("output_tokens", Integer), Column("cost_usd", Float), Column("priced", Boolean),
)
_outcomes = Index("ix_jobs_run_outcomes", _jobs.c.run_id, _jobs.c.status, _jobs.c.finished_at,
                  _jobs.c.mode, _jobs.c.input_tokens, _jobs.c.output_tokens,
                  _jobs.c.cost_usd, _jobs.c.priced)


def apply(conn: Connection) -> None:
    _samples.create(conn, checkfirst=True)
    _outcomes.create(conn, checkfirst=True)
