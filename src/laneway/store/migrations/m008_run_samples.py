"""Migration ``008_run_samples``: a running run's samples over time (jobs done, requests
in flight, the rate limits' use), so a finished run's page can draw them (see
:mod:`laneway.store.runviews`).

Frozen, like ``001_initial``: these definitions are this migration's own, not
:mod:`laneway.store.schema`'s. ``checkfirst`` makes it safe to run again after a
migrator that died before recording it (SQLite's DDL commits at once).
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Float, Index, Integer, MetaData, String, Table, Text

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


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
