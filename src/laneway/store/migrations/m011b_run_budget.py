"""Migration ``011b_run_budget``: a run's ``committed_usd``, its budget's reservations
(what its recorded results cost plus the worst case of its realtime requests in flight,
see :mod:`laneway.store.run_budget`), started at what its jobs cost. The second step of
issue 29's ledger work (011 had landed: never edited). It checks what exists first
(SQLite's DDL commits at once, so a migrator that died may have added the column).
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "011b_run_budget"


def apply(conn: Connection) -> None:
    if "committed_usd" in {c["name"] for c in inspect(conn).get_columns("runs")}:
        return
    conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN committed_usd FLOAT NOT NULL DEFAULT 0")
    conn.exec_driver_sql(
        "UPDATE runs SET committed_usd = (SELECT COALESCE(SUM(j.cost_usd), 0) "
        "FROM jobs j WHERE j.run_id = runs.id)")
