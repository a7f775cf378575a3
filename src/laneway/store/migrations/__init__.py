"""Append-only, named schema migrations, recorded in the database they changed.

A ledger written by an older laneway opens in a newer one: each migration not yet in
``schema_migrations`` runs once, in order. Never edit a migration that has shipped;
add a new one. The bookkeeping table itself (``schema_migrations``) is the
migrator's own and never changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import IntegrityError, OperationalError

from laneway.errors import StoreError
from laneway.store import schema
from laneway.store.migrations import (
    m001_initial,
    m002_batch_leases,
    m003_gateway,
    m004_gateway_batches,
    m005_rate_shares,
    m006_reservations,
    m007_answered_model,
    m008_run_samples,
    m011_holders,
    m011b_run_budget,
    m012_batch_budget,
    m013_rate_bucket,
)

Migration = Callable[[Connection], None]

#: In order. Each step's DDL is frozen in its own module: never edit one that has
#: shipped (add the next), and keep :mod:`laneway.store.schema` equal to their sum.
MIGRATIONS: list[tuple[str, Migration]] = [
    (m001_initial.NAME, m001_initial.apply),
    (m002_batch_leases.NAME, m002_batch_leases.apply),
    (m003_gateway.NAME, m003_gateway.apply),
    (m004_gateway_batches.NAME, m004_gateway_batches.apply),
    (m005_rate_shares.NAME, m005_rate_shares.apply),
    (m006_reservations.NAME, m006_reservations.apply),
    (m007_answered_model.NAME, m007_answered_model.apply),
    (m008_run_samples.NAME, m008_run_samples.apply),
    (m011_holders.NAME, m011_holders.apply),
    (m011b_run_budget.NAME, m011b_run_budget.apply),
    (m012_batch_budget.NAME, m012_batch_budget.apply),
    (m013_rate_bucket.NAME, m013_rate_bucket.apply),
]


def migrate(engine: Engine, *, tries: int = 5) -> list[str]:
    """Apply the migrations this database lacks; returns the names applied.

    Two processes opening a new SQLite ledger together both migrate it (SQLite has no
    lock to take first, and its DDL commits at once): the slower one fails on the step
    the other recorded (a duplicate name, a table or column that now exists) and tries
    again, finding that step done.
    """
    for attempt in range(tries):
        try:
            return _migrate(engine)
        except (IntegrityError, OperationalError):
            if engine.dialect.name == "postgresql" or attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _migrate(engine: Engine) -> list[str]:
    applied: list[str] = []
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # One migrator at a time when several workers start together (DDL is
            # transactional there, so a migrator that dies leaves nothing half done).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7411000001)")
        schema.schema_migrations.create(conn, checkfirst=True)
        done = set(conn.scalars(select(schema.schema_migrations.c.name)))
        newer = sorted(done - {name for name, _ in MIGRATIONS})
        if newer:  # a newer laneway migrated it: this one would misread its rows
            raise StoreError(
                f"the ledger was migrated by a newer laneway ({', '.join(newer)}): "
                "upgrade laneway on this host to the version the other processes run")
        for name, step in MIGRATIONS:
            if name in done:
                continue
            step(conn)
            conn.execute(schema.schema_migrations.insert().values(
                name=name, applied_at=time.time()))
            applied.append(name)
    return applied
