"""Migration ``005_rate_shares``: what each gateway process wants of the account's
limits, so several share them (see :mod:`laneway.store.rate_shares`).

Frozen, like ``001_initial``: these definitions are this migration's own, not
:mod:`laneway.store.schema`'s. ``checkfirst`` makes it safe to run again after a
migrator that died before recording it (SQLite's DDL commits at once).
"""

from __future__ import annotations

from sqlalchemy import Column, Connection, Float, Integer, MetaData, String, Table

NAME = "005_rate_shares"

_metadata = MetaData()

Table(
    "rate_shares", _metadata,
    Column("process", String(100), primary_key=True),
    Column("model", String(200), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("want_requests", Float, nullable=False),
    Column("want_input", Float, nullable=False),
    Column("want_output", Float, nullable=False),
    Column("grant_requests", Float, nullable=False),
    Column("grant_input", Float, nullable=False),
    Column("grant_output", Float, nullable=False),
    Column("limit_requests", Integer),
    Column("limit_input", Integer),
    Column("limit_output", Integer),
    Column("heartbeat_at", Float, nullable=False),
)


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
