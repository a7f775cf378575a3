"""Schema migrations: recorded in the ledger, applied once, an older ledger upgraded."""

from __future__ import annotations

from sqlalchemy import inspect, select

from laneway.store import Store, open_store
from laneway.store import schema as S
from laneway.store.migrations import MIGRATIONS, migrate


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
