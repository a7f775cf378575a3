"""Native batches in the ledger: each chunk submitted once, one owner per batch, leases
timed by the database's clock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import pytest

from laneway.store import BatchStatus, Store, open_store
from laneway.store.statuses import JobStatus

from .helpers import done, make_run


def test_begin_batch_needs_every_job_held(store: Store) -> None:
    make_run(store, n=6)
    mine = [c.seq for c in store.claim("r1", worker="w1", limit=3, lease_s=60)]
    store.claim("r1", worker="w2", limit=3, lease_s=60)
    # w1 cannot submit a chunk holding w2's jobs: nothing changes.
    assert not store.begin_batch(run_id="r1", batch_id="bbad", seqs=[0, 1, 3], worker="w1",
                                 size_bytes=10, lease_s=60)
    assert store.run_batches("r1") == []
    assert store.counts("r1")[JobStatus.SUBMITTED] == 0
    assert store.begin_batch(run_id="r1", batch_id="b1", seqs=mine, worker="w1",
                             size_bytes=123, lease_s=60)
    [b] = store.run_batches("r1")
    assert (b.id, b.status, b.request_count, b.bytes, b.claimed_by) == \
        ("b1", BatchStatus.SUBMITTING, 3, 123, "w1")
    assert sorted(store.batch_members("r1", "b1")) == [0, 1, 2]
    assert {m.attempts for m in store.batch_members("r1", "b1").values()} == {1}
    # Submitted jobs are not claimable, even once their job lease would have run out.
    assert all(c.seq >= 3 for c in store.claim("r1", worker="w3", limit=10, lease_s=60))
    store.batch_submitted("b1", "msgbatch_1")
    [b] = store.run_batches("r1")
    assert b.status == BatchStatus.SUBMITTED and b.provider_batch_id == "msgbatch_1"
    assert b.submitted_at is not None


def test_batch_results_are_recorded_once(store: Store) -> None:
    make_run(store, n=3)
    seqs = [c.seq for c in store.claim("r1", worker="w1", limit=3, lease_s=60)]
    store.begin_batch(run_id="r1", batch_id="b1", seqs=seqs, worker="w1", size_bytes=1,
                      lease_s=60)
    assert store.finish([done("r1", 0), done("r1", 1)]) == [0, 1]
    assert store.finish([done("r1", 0)]) == []  # a second poller's copy
    # Ending the batch sends back what its results missed, and releases the row.
    assert store.end_batch("b1", {"succeeded": 2}) == 1
    [b] = store.run_batches("r1")
    assert (b.status, b.claimed_by, b.lease_until, b.counts) == \
        (BatchStatus.ENDED, None, None, {"succeeded": 2})
    assert store.own_batches("r1", worker="w2", lease_s=60) == []


def test_abandon_batch_gives_the_jobs_back(store: Store) -> None:
    make_run(store, n=3)
    seqs = [c.seq for c in store.claim("r1", worker="w1", limit=3, lease_s=60)]
    store.begin_batch(run_id="r1", batch_id="b1", seqs=seqs, worker="w1", size_bytes=1,
                      lease_s=60)
    store.finish([done("r1", 0)])
    assert store.abandon_batch("b1", refund_attempt=True) == 2
    claimed = store.claim("r1", worker="w2", limit=9, lease_s=60)
    assert [(c.seq, c.attempts) for c in claimed] == [(1, 0), (2, 0)]
    [b] = store.run_batches("r1")
    assert b.status == BatchStatus.LOST


def test_one_owner_per_batch_and_takeover_after_the_lease(store: Store,
                                                          store_dsn: str) -> None:
    make_run(store, n=4)
    for i, worker in enumerate(("w1", "w2")):
        seqs = [c.seq for c in store.claim("r1", worker=worker, limit=2, lease_s=60)]
        store.begin_batch(run_id="r1", batch_id=f"b{i}", seqs=seqs, worker=worker,
                          size_bytes=1, lease_s=60)
    other = open_store(store_dsn)
    try:
        # Each batch has its owner; a third worker gets nothing.
        assert other.own_batches("r1", worker="w3", lease_s=60) == []
        assert [b.id for b in store.own_batches("r1", worker="w2", lease_s=60)] == ["b1"]
        # w1 died while creating b0: its lease runs out (a renewal that ends at once).
        assert [b.id for b in store.own_batches("r1", worker="w1", lease_s=-1)] == ["b0"]
        taken = other.own_batches("r1", worker="w3", lease_s=60)
        assert [(b.id, b.status, b.claimed_by) for b in taken] == \
            [("b0", BatchStatus.SUBMITTING, "w3")]
        assert [b.id for b in store.own_batches("r1", worker="w1", lease_s=60)] == []
    finally:
        other.close()


@contextlib.contextmanager
def host_clock(monkeypatch: pytest.MonkeyPatch, offset_s: float) -> Iterator[None]:
    """Run the block as on a host whose clock is ``offset_s`` off."""
    real = time.time
    with monkeypatch.context() as m:
        m.setattr(time, "time", lambda: real() + offset_s)
        yield


@pytest.mark.postgres
def test_batch_leases_hold_across_hosts_whose_clocks_disagree(
        pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Host A's clock is 10 minutes slow, host B's 10 minutes fast. A lease is judged by
    the database's clock: B never steals a batch A holds under a live lease, and either
    host takes over a batch as soon as the other's lease has truly run out."""
    a, b = open_store(pg_dsn), open_store(pg_dsn)
    try:
        make_run(a, n=4)
        with host_clock(monkeypatch, -600):
            for batch_id in ("b1", "b2"):
                seqs = [c.seq for c in a.claim("r1", worker="A", limit=2, lease_s=60)]
                assert a.begin_batch(run_id="r1", batch_id=batch_id, seqs=seqs,
                                     worker="A", size_bytes=1, lease_s=300)
        with host_clock(monkeypatch, +600):  # A's 5-minute leases are live: not B's
            assert b.own_batches("r1", worker="B", lease_s=300) == []
        with host_clock(monkeypatch, -600):  # A renews for 1 s only, then dies
            assert len(a.own_batches("r1", worker="A", lease_s=1.0)) == 2
        time.sleep(1.2)
        with host_clock(monkeypatch, +600):
            assert [r.id for r in b.own_batches("r1", worker="B", lease_s=1.0)] == \
                ["b1", "b2"]
        time.sleep(1.2)  # now B dies: slow A takes the batches back, 1 s later, not 20 min
        with host_clock(monkeypatch, -600):
            assert [r.id for r in a.own_batches("r1", worker="A", lease_s=300)] == \
                ["b1", "b2"]
    finally:
        a.close()
        b.close()
