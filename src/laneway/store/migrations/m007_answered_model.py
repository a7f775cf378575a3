"""Migration ``007_answered_model``: the model that answered, per job and per gateway
request (``answered_model``), and what the model asked for would have cost when another
answered (``asked_cost_usd``)."""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "007_answered_model"

_COLUMNS = (("answered_model", "VARCHAR(200)"), ("asked_cost_usd", "FLOAT"))


def apply(conn: Connection) -> None:
    # A migrator that died on SQLite (DDL commits at once) may have added some already.
    for table in ("jobs", "gateway_requests"):
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        for name, kind in _COLUMNS:
            if name not in have:
                conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
