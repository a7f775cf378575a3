"""Migration ``003_gateway``: the gateway's client keys and its per-request traffic.

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
    UniqueConstraint,
)

NAME = "003_gateway"

_metadata = MetaData()

_gateway_keys = Table(
    "gateway_keys", _metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("key_hash", String(64), nullable=False),
    Column("budget_usd", Float),
    Column("rpm", Integer),
    Column("lane", String(20)),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
    UniqueConstraint("name", name="uq_gateway_keys_name"),
)
Index("ix_gateway_keys_prefix", _gateway_keys.c.prefix)

_gateway_requests = Table(
    "gateway_requests", _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key_id", String(40)),
    Column("model", String(200), nullable=False),
    Column("lane", String(20), nullable=False),
    Column("status", Integer, nullable=False),
    Column("streamed", Boolean, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cache_creation_input_tokens", Integer, nullable=False),
    Column("cache_read_input_tokens", Integer, nullable=False),
    Column("cost_usd", Float),
    Column("queued_s", Float, nullable=False),
    Column("ttft_s", Float),
    Column("duration_s", Float, nullable=False),
    Column("upstream_errors", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
)
Index("ix_gateway_requests_key", _gateway_requests.c.key_id)
Index("ix_gateway_requests_started", _gateway_requests.c.started_at)


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
