"""Migration ``012_batch_budget``: a native batch's ``reserved_usd``, the worst case of
its requests still reserved of its run's budget (in ``runs.committed_usd``, see
:mod:`laneway.store.run_budget`), so a run's ``--budget`` holds across every process
sending its native batches too. Batches submitted before it reserved nothing (0). It
checks what exists first (SQLite's DDL commits at once, so a migrator that died may
have added the column).
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "012_batch_budget"


def apply(conn: Connection) -> None:
    if "reserved_usd" in {c["name"] for c in inspect(conn).get_columns("batches")}:
        return
    conn.exec_driver_sql("ALTER TABLE batches ADD COLUMN reserved_usd FLOAT NOT NULL DEFAULT 0")
