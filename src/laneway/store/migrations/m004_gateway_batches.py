"""Migration ``004_gateway_batches``: the gateway's Message Batches.

Frozen, like ``001_initial``: these definitions are this migration's own, not
:mod:`laneway.store.schema`'s. ``checkfirst`` makes it safe to run again after a
migrator that died before recording it (SQLite's DDL commits at once).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAME = "004_gateway_batches"

_metadata = MetaData()

_gateway_batches = Table(
    "gateway_batches", _metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(40), nullable=False),
    Column("key_id", String(40)),
    Column("request_count", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("deadline_at", Float),
    Column("mode", String(20), nullable=False),
    Column("plan", Text),
    Column("input_path", Text),
    Column("rejected", Text),
    Column("cancel_initiated_at", Float),
    Column("ended_at", Float),
    Column("deleted_at", Float),
    UniqueConstraint("id", name="uq_gateway_batches_id"),
)
Index("ix_gateway_batches_key", _gateway_batches.c.key_id, _gateway_batches.c.seq)


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
