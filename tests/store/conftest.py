"""Fixtures for the store tests: a ledger on SQLite and on a real PostgreSQL.

PostgreSQL comes from ``$LANEWAY_TEST_PG`` if set, else a private server started for
the session from Debian's binaries (scripts/test installs the ``postgresql`` package).
If neither is possible the PostgreSQL tests are skipped, saying why. Each test gets an
empty ledger: a fresh SQLite file, or a fresh schema in the PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import pgserver
from laneway.store import Store, open_store


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """The DSN of a PostgreSQL database for this session (skips if there is none)."""
    try:
        dsn = pgserver.find_postgres()
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    try:
        pgserver.wait_ready(dsn)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(str(exc))
    yield dsn
    pgserver.stop_shared()


@pytest.fixture
def pg_dsn(pg_server_dsn: str) -> Iterator[str]:
    """A DSN whose connections see an empty schema of their own."""
    name, dsn = pgserver.new_schema(pg_server_dsn)
    yield dsn
    pgserver.drop_schema(pg_server_dsn, name)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty ledger's DSN, on each database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    dsn: str = request.getfixturevalue("pg_dsn")
    return dsn


@pytest.fixture
def store(store_dsn: str) -> Iterator[Store]:
    """An empty, migrated ledger, on each database."""
    st = open_store(store_dsn)
    yield st
    st.close()
