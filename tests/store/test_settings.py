"""Where the ledger lives: DSNs for SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from laneway.errors import ConfigError, StoreError
from laneway.store import StoreSettings, open_store
from pgserver import schema_dsn


def test_postgres_dsns_use_psycopg_and_never_print_the_password() -> None:
    for dsn in ("postgresql://u:secret@db.example:5433/ledger",
                "postgres://u:secret@db.example:5433/ledger",
                "postgresql+psycopg://u:secret@db.example:5433/ledger"):
        s = StoreSettings.from_dsn(dsn)
        assert s.kind == "postgresql" and s.path is None
        assert s.url == "postgresql+psycopg://u:secret@db.example:5433/ledger"
        assert str(s) == "postgresql://u@db.example:5433/ledger"


def test_sqlite_dsns(tmp_path: Path) -> None:
    assert StoreSettings.from_dsn(f"sqlite:///{tmp_path}/a.db").path == tmp_path / "a.db"
    assert StoreSettings.from_dsn(tmp_path / "b.db").kind == "sqlite"
    assert StoreSettings.from_dsn(None).path == Path(".laneway/laneway.db")
    with pytest.raises(ConfigError, match="postgresql://USER@HOST/DB"):
        StoreSettings.from_dsn("mysql://x/y")


def test_query_options_reach_the_driver() -> None:
    dsn = schema_dsn("postgresql://u@h/db", "t_1")
    assert dsn == "postgresql://u@h/db?options=-csearch_path%3Dt_1"
    assert StoreSettings.from_dsn(dsn).url.endswith("?options=-csearch_path%3Dt_1")


def test_an_unreachable_server_is_one_clear_error() -> None:
    with pytest.raises(StoreError, match="cannot open the ledger postgresql://nobody@"):
        open_store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
