"""Coordinating native submissions between workers: each chunk is submitted once."""

from __future__ import annotations

import time

from laneway.store import Store, open_store
from laneway.store import schema as S

from .helpers import done, make_run


def test_begin_batch_needs_every_job_held(store: Store) -> None:
    make_run(store, n=6)
    mine = [c.seq for c in store.claim("r1", worker="w1", limit=3, lease_s=60)]
    store.claim("r1", worker="w2", limit=3, lease_s=60)
    # w1 cannot submit a chunk holding w2's jobs: nothing changes.
    assert not store.begin_batch("r1", batch_id="b-bad", seqs=[0, 1, 3], worker="w1",
                                 size_bytes=10, lease_s=60)
    assert store.list_batches("r1") == []
    assert store.counts("r1")[S.SUBMITTED] == 0
    assert store.begin_batch("r1", batch_id="b1", seqs=mine, worker="w1", size_bytes=123,
                             lease_s=60)
    [b] = store.list_batches("r1")
    assert (b.id, b.status, b.request_count, b.bytes, b.claimed_by) == \
        ("b1", "submitting", 3, 123, "w1")
    assert store.batch_members("b1") == {"j0": 0, "j1": 1, "j2": 2}
    # Submitted jobs are not claimable, even once their job lease would have run out.
    assert all(c.seq >= 3 for c in store.claim("r1", worker="w3", limit=10, lease_s=60))
    assert store.batch_created("b1", provider_batch_id="msgbatch_1", worker="w1")
    [b] = store.list_batches("r1")
    assert b.status == "submitted" and b.provider_batch_id == "msgbatch_1"
    assert b.submitted_at is not None


def test_batch_results_are_recorded_once(store: Store) -> None:
    make_run(store, n=2)
    seqs = [c.seq for c in store.claim("r1", worker="w1", limit=2, lease_s=60)]
    store.begin_batch("r1", batch_id="b1", seqs=seqs, worker="w1", size_bytes=1, lease_s=60)
    assert store.finish([done("r1", 0), done("r1", 1)]) == [0, 1]
    assert store.finish([done("r1", 0)]) == []  # a second poller's copy
    assert store.update_batch("b1", worker="w1", status="ended", ended_at=time.time())
    [b] = store.list_batches("r1")
    assert b.status == "ended" and b.claimed_by is None


def test_abort_batch_gives_the_jobs_back(store: Store) -> None:
    make_run(store, n=3)
    seqs = [c.seq for c in store.claim("r1", worker="w1", limit=3, lease_s=60)]
    store.begin_batch("r1", batch_id="b1", seqs=seqs, worker="w1", size_bytes=1, lease_s=60)
    store.finish([done("r1", 0)])
    assert store.abort_batch("b1") == 2
    assert [c.seq for c in store.claim("r1", worker="w2", limit=9, lease_s=60)] == [1, 2]
    [b] = store.list_batches("r1")
    assert b.status == "failed"


def test_one_owner_per_batch_and_takeover_after_the_lease(store: Store,
                                                          store_dsn: str) -> None:
    make_run(store, n=4)
    for i, worker in enumerate(("w1", "w2")):
        seqs = [c.seq for c in store.claim("r1", worker=worker, limit=2, lease_s=60)]
        store.begin_batch("r1", batch_id=f"b{i}", seqs=seqs, worker=worker, size_bytes=1,
                          lease_s=0.3 if worker == "w1" else 60)
    other = open_store(store_dsn)
    try:
        # Each batch has its owner; a third worker gets nothing yet.
        assert other.claim_batches("r1", worker="w3", lease_s=60) == []
        assert [b.id for b in store.claim_batches("r1", worker="w2", lease_s=60)] == ["b1"]
        time.sleep(0.4)  # w1 died while creating b0: its lease runs out
        taken = other.claim_batches("r1", worker="w3", lease_s=60)
        assert [(b.id, b.status, b.claimed_by) for b in taken] == \
            [("b0", "submitting", "w3")]
        # The dead worker's late id is still recorded, but it no longer owns the batch.
        assert not store.batch_created("b0", provider_batch_id="msgbatch_0", worker="w1")
        assert other.extend_batch_lease(["b0"], worker="w3", lease_s=60) == 1
        assert store.extend_batch_lease(["b0"], worker="w1", lease_s=60) == 0
    finally:
        other.close()


def test_try_lock_admits_one_holder(store: Store, store_dsn: str) -> None:
    other = open_store(store_dsn)
    try:
        with store.try_lock("native-submit:r1") as first:
            assert first
            with other.try_lock("native-submit:r1") as second:
                assert not second
            with other.try_lock("native-submit:r2") as unrelated:
                assert unrelated
        with other.try_lock("native-submit:r1") as after:
            assert after
    finally:
        other.close()
