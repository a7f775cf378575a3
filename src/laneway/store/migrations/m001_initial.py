"""Migration ``001_initial``: the ledger's tables as laneway first shipped them.

Frozen: these definitions are this migration's own, not :mod:`laneway.store.schema`'s,
so a later change to the tables (a new migration) never changes what 001 made. Only
the DDL matters here (no Python-side defaults).
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
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAME = "001_initial"

_metadata = MetaData()

_runs = Table(
    "runs", _metadata,
    Column("id", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("input_path", Text),
    Column("input_sha256", String(64)),
    Column("fingerprint", String(64), nullable=False),
    Column("options", Text, nullable=False),
    Column("mode", String(20), nullable=False),
    Column("provider", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("total", Integer, nullable=False),
    Column("ingested_lines", Integer, nullable=False),
    Column("ingest_done", Boolean, nullable=False),
    Column("budget_usd", Float),
    Column("deadline_at", Float),
    Column("output_path", Text),
    Column("output_written_at", Float),
    Column("note", Text),
)

_jobs = Table(
    "jobs", _metadata,
    Column("run_id", String(200), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("custom_id", String(300), nullable=False),
    Column("line", Integer, nullable=False),
    Column("params", Text, nullable=False),
    Column("model", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("rate_limited", Integer, nullable=False),
    Column("claimed_by", String(100)),
    Column("lease_until", Float),
    Column("batch_id", String(100)),
    Column("mode", String(20)),
    Column("result", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("cache_creation_input_tokens", Integer),
    Column("cache_read_input_tokens", Integer),
    Column("cost_usd", Float),
    Column("priced", Boolean),
    Column("error_type", String(100)),
    Column("error_message", Text),
    Column("updated_at", Float),
    Column("finished_at", Float),
    PrimaryKeyConstraint("run_id", "seq"),
    UniqueConstraint("run_id", "custom_id", name="uq_jobs_run_custom_id"),
)
Index("ix_jobs_run_status_seq", _jobs.c.run_id, _jobs.c.status, _jobs.c.seq)
Index("ix_jobs_batch", _jobs.c.batch_id)

_batches = Table(
    "batches", _metadata,
    Column("id", String(100), primary_key=True),
    Column("run_id", String(200), nullable=False),
    Column("provider_batch_id", String(200)),
    Column("status", String(20), nullable=False),
    Column("request_count", Integer, nullable=False),
    Column("bytes", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("submitted_at", Float),
    Column("ended_at", Float),
    Column("counts", Text),
    Column("claimed_by", String(100)),
)
Index("ix_batches_run", _batches.c.run_id, _batches.c.status)

_events = Table(
    "events", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(200), nullable=False),
    Column("at", Float, nullable=False),
    Column("kind", String(50), nullable=False),
    Column("data", Text, nullable=False),
)
Index("ix_events_run_at", _events.c.run_id, _events.c.at)

_pauses = Table(
    "pauses", _metadata,
    Column("model", String(200), primary_key=True),
    Column("until", Float, nullable=False),
    Column("reason", Text),
)


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
