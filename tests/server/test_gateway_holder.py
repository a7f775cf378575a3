"""A gateway process records itself in ``holders`` as it starts (before it reserves
anything: its reservations are judged by that row when another process starts, see
tests/store/test_reservation_liveness.py), and a clean stop gives the row back."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from laneway.local import RunningLocal
from laneway.store import open_store
from laneway.store import schema as S
from laneway.store.holders import this_identity

from .helpers import start_server


def _holders(db: Path) -> list[tuple[str, int]]:
    store = open_store(db)
    try:
        with store.engine.connect() as conn:
            return [(str(i), int(p)) for i, p in conn.execute(
                select(S.holders.c.id, S.holders.c.pid))]
    finally:
        store.close()


def test_a_gateway_is_a_holder_while_it_runs_and_not_after_a_clean_stop(
        local_api: RunningLocal, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    served = start_server(local_api, db)
    try:
        process = served.app.state.gateway.pipeline.process
        assert _holders(db) == [(process, this_identity().pid)]
    finally:
        served.stop()
    assert _holders(db) == []
