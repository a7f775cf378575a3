"""Migration ``013_rate_bucket``: a key's rate as one number, ``gateway_keys.rate_tat``.

A key's ``rpm`` was counted by the times of its last ``rpm`` requests (``sent_at``, a
JSON list read and written whole by every request: at an rpm of 10,000 that is ~180 KB
and ~5 ms of CPU a request). It is now a bucket of ``rpm`` requests refilled
continuously, the API's own rule for its rate limits, kept as the time the bucket will
be full again (:func:`laneway.store.keys.rate_wait`). ``sent_at`` stays (never dropped)
and is no longer written; a key starts with a full bucket. It checks what exists first
(SQLite's DDL commits at once, so a migrator that died may have added the column).
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect

NAME = "013_rate_bucket"


def apply(conn: Connection) -> None:
    if "rate_tat" in {c["name"] for c in inspect(conn).get_columns("gateway_keys")}:
        return
    conn.exec_driver_sql("ALTER TABLE gateway_keys ADD COLUMN rate_tat FLOAT")
