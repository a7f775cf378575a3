"""A run's budget reserved in the ledger (``runs.committed_usd``): one statement checks
it, a result settles its reservation as it is recorded, and a run taken up with nothing
in flight is recounted (issue 29, item 1)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import select

from laneway.store import Store
from laneway.store import schema as S
from laneway.store.batches import Begun

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


def test_a_native_batch_reserves_its_worst_case_and_gives_it_back_as_it_files(
        store: Store) -> None:
    make_run(store, n=6)
    store.claim("r1", worker="w1", limit=6, lease_s=60)
    # 0.3 + 0.8 > 1.0: nothing recorded, the jobs still claimed.
    assert store.begin_batch(run_id="r1", batch_id="b1", seqs=[0, 1, 2], size_bytes=9,
                             worker="w1", reserve_usd=0.3, budget_usd=1.0)
    assert store.begin_batch(run_id="r1", batch_id="b2", seqs=[3, 4, 5], size_bytes=9,
                             worker="w1", reserve_usd=0.8, budget_usd=1.0) is Begun.OVER_BUDGET
    assert committed(store) == pytest.approx(0.3)
    assert store.run_batches("r1")[0].id == "b1" and len(store.run_batches("r1")) == 1
    assert not store.reserve_run("r1", 0.71, budget_usd=1.0)  # realtime sees it too
    # A group filed: job 0 recorded (0.02), job 1 sent again; their worst cases back.
    worst = {0: 0.1, 1: 0.1, 2: 0.1}
    assert store.file_results("r1", "b1", [done("r1", 0, cost_usd=0.02)], [1], worst) == (
        [0], 1)
    assert store.file_results("r1", "b1", [done("r1", 0, cost_usd=0.02)], [1], worst) == (
        [], 0)  # filed twice (two owners): nothing moved, nothing given back twice
    assert committed(store) == pytest.approx(0.12)
    store.end_batch("b1", None)  # job 2 missing from its results: the rest back
    assert committed(store) == pytest.approx(0.02)
    assert not store.recount_run("r1")  # jobs 3-5 still claimed
    store.release_all("r1")
    assert store.recount_run("r1") and committed(store) == pytest.approx(0.02)


def test_a_lost_batch_gives_its_reservation_back_and_a_recount_keeps_those_in_flight(
        store: Store) -> None:
    make_run(store, n=4)
    store.claim("r1", worker="w1", limit=4, lease_s=60)
    for batch, seqs in (("b1", [0, 1]), ("b2", [2, 3])):
        assert store.begin_batch(run_id="r1", batch_id=batch, seqs=seqs, size_bytes=9,
                                 worker="w1", reserve_usd=0.25, budget_usd=1.0)
    store.abandon_batch("b1", refund_attempt=True)
    assert committed(store) == pytest.approx(0.25)
    store.release_all("r1")  # nothing claimed: recounted, b2 still in flight
    assert store.recount_run("r1") and committed(store) == pytest.approx(0.25)
