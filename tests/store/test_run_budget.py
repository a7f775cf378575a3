"""A run's budget reserved in the ledger (``runs.committed_usd``): one statement checks
it, a result settles its reservation as it is recorded, and a run taken up with nothing
in flight is recounted (issue 29, item 1)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from laneway.store import Store
from laneway.store import schema as S

from .helpers import done, make_run


def committed(store: Store, run_id: str = "r1") -> float:
    with store.engine.connect() as conn:
        return float(conn.scalar(select(S.runs.c.committed_usd).where(S.runs.c.id == run_id)))


def test_reservations_stop_at_the_budget_and_results_settle_them(store: Store) -> None:
    make_run(store, n=4)
    assert store.reserve_run("r1", 0.04, budget_usd=0.1)
    assert store.reserve_run("r1", 0.04, budget_usd=0.1)
    assert not store.reserve_run("r1", 0.04, budget_usd=0.1)  # 0.12 > 0.1: nothing written
    assert committed(store) == pytest.approx(0.08)
    # Answered at 0.01: the worst case out, the cost in. A result recorded already (sent
    # twice) gives its reservation back and adds nothing.
    store.finish([dataclasses.replace(done("r1", 0), reserved_usd=0.04)])
    store.finish([dataclasses.replace(done("r1", 0), reserved_usd=0.04)])
    assert committed(store) == pytest.approx(0.01)
    assert store.reserve_run("r1", 0.09, budget_usd=0.1)
    store.release_run("r1", 0.09)  # not answered: nothing billed
    assert committed(store) == pytest.approx(0.01)


def test_a_run_is_recounted_only_with_nothing_in_flight(store: Store) -> None:
    make_run(store, n=3)
    store.finish([done("r1", 0, cost_usd=0.02)])
    store.claim("r1", worker="w1", limit=1, lease_s=60)
    assert store.reserve_run("r1", 0.5, budget_usd=1.0)  # then the worker was killed
    assert not store.recount_run("r1")  # its job is claimed: maybe in flight
    store.release_all("r1")
    assert store.recount_run("r1") and committed(store) == pytest.approx(0.02)
