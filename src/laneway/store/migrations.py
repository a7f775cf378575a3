"""Append-only, named schema migrations, recorded in the database they changed.

A ledger written by an older laneway opens in a newer one: each migration not yet in
``schema_migrations`` runs once, in order. Never edit a migration that has shipped;
add a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, inspect, select

from laneway.store import schema

Migration = Callable[[Connection], None]


def _m001_initial(conn: Connection) -> None:
    for table in (schema.runs, schema.jobs, schema.batches, schema.events, schema.pauses):
        table.create(conn, checkfirst=True)


def _m002_batch_leases(conn: Connection) -> None:
    # 001 creates tables from the current definitions, so a new ledger has the column.
    if "lease_until" not in {c["name"] for c in inspect(conn).get_columns("batches")}:
        conn.exec_driver_sql("ALTER TABLE batches ADD COLUMN lease_until FLOAT")


MIGRATIONS: list[tuple[str, Migration]] = [
    ("001_initial", _m001_initial),
    ("002_batch_leases", _m002_batch_leases),
]


def migrate(engine: Engine) -> list[str]:
    """Apply the migrations this database lacks; returns the names applied."""
    applied: list[str] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One migrator at a time when several workers start together (DDL is
            # transactional there, so a migrator that dies leaves nothing half done).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7411000001)")
        schema.schema_migrations.create(conn, checkfirst=True)
        done = set(conn.scalars(select(schema.schema_migrations.c.name)))
        for name, step in MIGRATIONS:
            if name in done:
                continue
            step(conn)
            conn.execute(schema.schema_migrations.insert().values(
                name=name, applied_at=time.time()))
            applied.append(name)
    return applied
