"""Migration ``011_holders``: the processes that hold claims and where they run (host,
PID namespace, pid and its start time, boot id), so a restarted process takes up a gone
one's claims at once (see :mod:`laneway.store.holders`); and an index of the jobs by
their holder (only the claimed ones: a handful at any time).

Frozen: these definitions are this migration's own. Each step checks what exists first
(SQLite's DDL commits at once, so a migrator that died may have done part of it).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
)

NAME = "011_holders"

_metadata = MetaData()

_holders = Table(
    "holders", _metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(200), nullable=False),
    Column("pid_ns", String(64)),
    Column("pid", Integer, nullable=False),
    Column("pid_start", BigInteger),
    Column("boot_id", String(64)),
    Column("since", Float, nullable=False),
)
Index("ix_holders_host", _holders.c.host)


def apply(conn: Connection) -> None:
    _metadata.create_all(conn, checkfirst=True)
    indexes = {i["name"] for i in inspect(conn).get_indexes("jobs")}
    if "ix_jobs_claimed_by" not in indexes:
        conn.exec_driver_sql("CREATE INDEX ix_jobs_claimed_by ON jobs (claimed_by) "
                             "WHERE claimed_by IS NOT NULL")
