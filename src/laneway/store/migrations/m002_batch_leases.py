"""Migration ``002_batch_leases``: a lease on each batch row (``batches.lease_until``)."""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "002_batch_leases"


def apply(conn: Connection) -> None:
    # Not a guess at what 001 made (001 is frozen): on SQLite, DDL commits at once
    # (pysqlite opens transactions only for DML), so a migrator that died before
    # recording this step may have added the column already.
    if "lease_until" not in {c["name"] for c in inspect(conn).get_columns("batches")}:
        conn.exec_driver_sql("ALTER TABLE batches ADD COLUMN lease_until FLOAT")
