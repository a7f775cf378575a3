"""Schema migrations: recorded in the ledger, applied once, an older ledger upgraded."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine, UniqueConstraint, create_engine, inspect, select

from laneway.store import Store, StoreSettings, open_store
from laneway.store import schema as S
from laneway.store.migrations import MIGRATIONS, m001_initial, migrate


def _applied(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return sorted(conn.scalars(select(S.schema_migrations.c.name)))


def test_migrations_are_recorded_and_idempotent(store: Store, store_dsn: str) -> None:
    names = [name for name, _ in MIGRATIONS]
    assert _applied(store) == names
    assert {"runs", "jobs", "batches", "events", "pauses", "schema_migrations"} <= \
        set(inspect(store.engine).get_table_names())
    assert migrate(store.engine) == []
    store.create_run(run_id="kept", fingerprint="f", options={}, mode="realtime",
                     provider="local", input_path=None, input_sha256=None)
    again = open_store(store_dsn)  # opening twice changes nothing, loses nothing
    try:
        assert _applied(again) == names
        assert again.get_run("kept") is not None
    finally:
        again.close()


def test_an_older_ledger_is_upgraded(store: Store, store_dsn: str) -> None:
    # Make the ledger look as laneway 001 left it: no batch leases, 002 not recorded.
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE batches DROP COLUMN lease_until")
        conn.execute(S.schema_migrations.delete().where(
            S.schema_migrations.c.name == "002_batch_leases"))
    store.close()
    upgraded = open_store(store_dsn)
    try:
        assert "002_batch_leases" in _applied(upgraded)
        columns = {c["name"] for c in inspect(upgraded.engine).get_columns("batches")}
        assert "lease_until" in columns
    finally:
        upgraded.close()


def _shape(engine: Engine) -> dict[str, Any]:
    """What a ledger's tables are: columns (nullable or not), keys, indexes, uniques."""
    look = inspect(engine)
    shape: dict[str, Any] = {}
    for table in sorted(S.metadata.tables):
        if table not in look.get_table_names():
            shape[table] = None
            continue
        shape[table] = {
            "columns": {c["name"]: c["nullable"] for c in look.get_columns(table)},
            "primary key": look.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted((i["name"], tuple(i["column_names"]))
                              for i in look.get_indexes(table)
                              if not i.get("duplicates_constraint")),  # a unique's own
            "unique": sorted((u["name"], tuple(u["column_names"]))
                             for u in look.get_unique_constraints(table)),
        }
    return shape


def _declared_shape() -> dict[str, Any]:
    """The same, as laneway.store.schema declares the tables now."""
    return {name: {
        "columns": {c.name: bool(c.nullable) for c in t.columns},
        "primary key": [c.name for c in t.primary_key.columns],
        "indexes": sorted((i.name, tuple(c.name for c in i.columns)) for i in t.indexes),
        "unique": sorted((u.name, tuple(c.name for c in u.columns)) for u in t.constraints
                         if isinstance(u, UniqueConstraint)),
    } for name, t in sorted(S.metadata.tables.items())}


def test_the_migrations_make_the_declared_tables(store: Store) -> None:
    # schema.py changed without a migration (or a migration without schema.py) fails here.
    assert _shape(store.engine) == _declared_shape()


def test_a_ledger_made_by_001_alone_migrates_to_the_current_tables(store_dsn: str) -> None:
    # A ledger as the first laneway left it: 001's frozen tables, 001 recorded, nothing
    # after. 001 must still make exactly those (no batch leases: 002 adds them).
    engine = create_engine(StoreSettings.from_dsn(store_dsn).url)
    try:
        with engine.begin() as conn:
            S.schema_migrations.create(conn)
            m001_initial.apply(conn)
            conn.execute(S.schema_migrations.insert().values(name=m001_initial.NAME,
                                                             applied_at=time.time()))
        assert "lease_until" not in _shape(engine)["batches"]["columns"]
    finally:
        engine.dispose()
    upgraded = open_store(store_dsn)
    try:
        assert _applied(upgraded) == [name for name, _ in MIGRATIONS]
        assert _shape(upgraded.engine) == _declared_shape()
    finally:
        upgraded.close()


def test_processes_opening_a_new_sqlite_ledger_together_all_succeed(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    db = tmp_path / "new.db"
    probe = ("import sys, time; from laneway.store import open_store, StoreSettings\n"
             "t = float(sys.argv[2])\n"
             "while time.time() < t: pass\n"
             "open_store(StoreSettings.from_dsn(sys.argv[1])).close(); print('ok')")
    start = __import__("time").time() + 3.0
    procs = [subprocess.Popen([sys.executable, "-c", probe, str(db), str(start)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    failures = [err.strip().splitlines()[-1] for out, err in results if out.strip() != "ok"]
    assert failures == []


def test_a_ledger_a_newer_laneway_migrated_is_refused_in_one_line(
        store: Store, store_dsn: str) -> None:
    """Mixed versions on one ledger: a process older than the ledger's migrations is
    refused when it opens it (it would misread rows a newer schema writes)."""
    import pytest

    from laneway.errors import StoreError

    with store.engine.begin() as conn:
        conn.execute(S.schema_migrations.insert().values(name="999_from_the_future",
                                                         applied_at=time.time()))
    with pytest.raises(StoreError, match=r"newer laneway \(999_from_the_future\)") as err:
        open_store(StoreSettings.from_dsn(store_dsn)).close()
    assert "\n" not in str(err.value)
