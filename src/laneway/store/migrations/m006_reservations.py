"""Migration ``006_reservations``: budgets and rates kept in the ledger.

``gateway_keys`` gains what a key has spent (settled), reserved (requests in flight,
at their worst case), held (requests whose end was never seen: a crash, charged at
their worst case until ``laneway keys settle``) and the times of its last requests
(``sent_at``, its rate's window); the spent column starts as the sum of the key's
recorded traffic. ``gateway_requests`` gains the reservation: its ``state``
(``reserved`` while in flight, then ``done``, ``interrupted`` or ``released``), its
worst case, the process that holds it, the Message Batch it reserves for, and a note.
Each step checks what exists first: SQLite's DDL commits at once, so a migrator that
died before recording this step may have done part of it.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "006_reservations"

_KEYS = (("spent_usd", "FLOAT NOT NULL DEFAULT 0"), ("reserved_usd", "FLOAT NOT NULL DEFAULT 0"),
         ("held_usd", "FLOAT NOT NULL DEFAULT 0"), ("sent_at", "TEXT"))
_REQUESTS = (("state", "VARCHAR(20) NOT NULL DEFAULT 'done'"), ("worst_usd", "FLOAT"),
             ("process", "VARCHAR(100)"), ("batch_id", "VARCHAR(40)"), ("note", "TEXT"))


def _add(conn: Connection, table: str, columns: tuple[tuple[str, str], ...]) -> None:
    have = {c["name"] for c in inspect(conn).get_columns(table)}
    for name, ddl in columns:
        if name not in have:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}")


def apply(conn: Connection) -> None:
    _add(conn, "gateway_keys", _KEYS)
    _add(conn, "gateway_requests", _REQUESTS)
    indexes = {i["name"] for i in inspect(conn).get_indexes("gateway_requests")}
    if "ix_gateway_requests_state" not in indexes:
        conn.exec_driver_sql("CREATE INDEX ix_gateway_requests_state "
                             "ON gateway_requests (state)")
    if "ix_gateway_requests_batch" not in indexes:
        conn.exec_driver_sql("CREATE INDEX ix_gateway_requests_batch "
                             "ON gateway_requests (batch_id)")
    conn.exec_driver_sql(
        "UPDATE gateway_keys SET spent_usd = (SELECT COALESCE(SUM(r.cost_usd), 0) "
        "FROM gateway_requests r WHERE r.key_id = gateway_keys.id)")
