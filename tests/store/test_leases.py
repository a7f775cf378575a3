"""Leases kept alive by a heartbeat thread while a worker lives, and only then."""

from __future__ import annotations

import time

from laneway.store import Store
from laneway.store.leases import LeaseKeeper

from .helpers import make_run


def test_renew_leases_touches_only_the_workers_own(store: Store) -> None:
    make_run(store, n=4)
    store.claim("r1", worker="w1", limit=2, lease_s=0.2)
    store.claim("r1", worker="w2", limit=2, lease_s=0.2)
    assert store.renew_leases("r1", worker="w1", lease_s=60) == 2
    time.sleep(0.3)
    assert [c.seq for c in store.claim("r1", worker="w3", limit=9, lease_s=60)] == [2, 3]


def test_keeper_holds_the_leases_of_a_live_worker(store: Store) -> None:
    make_run(store, n=3)
    store.claim("r1", worker="w1", limit=3, lease_s=0.3)
    keeper = LeaseKeeper(store, worker="w1", lease_s=0.3)
    keeper.run_id = "r1"
    keeper.start()
    try:
        time.sleep(0.8)  # well past the first lease
        assert store.claim("r1", worker="w2", limit=9, lease_s=60) == []
        assert keeper.renewals >= 3
    finally:
        keeper.stop()
    time.sleep(0.4)  # the worker is gone: its jobs come back
    assert len(store.claim("r1", worker="w2", limit=9, lease_s=60)) == 3


def test_keeper_lets_a_wedged_worker_go(store: Store) -> None:
    make_run(store, n=2)
    store.claim("r1", worker="w1", limit=2, lease_s=0.3)
    keeper = LeaseKeeper(store, worker="w1", lease_s=0.3, stall_s=0.05)
    keeper.run_id = "r1"
    keeper.start()
    try:
        time.sleep(0.7)  # no beat from the event loop: no renewals
        assert keeper.renewals == 0
        assert len(store.claim("r1", worker="w2", limit=9, lease_s=60)) == 2
    finally:
        keeper.stop()
