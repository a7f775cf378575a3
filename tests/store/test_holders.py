"""Claims of a process that is gone come back at once, not after their lease: a holder
of this host whose pid died (or was reused, or whose host booted since); a holder on
another host keeps its claims until its lease runs out (issue 29, item 2)."""

from __future__ import annotations

import dataclasses
import subprocess
import time

from sqlalchemy import select

from laneway.store import Store
from laneway.store import schema as S
from laneway.store.holders import Identity, is_gone, this_identity
from laneway.store.leases import new_worker_id
from laneway.store.statuses import JobStatus, RunStatus

from .helpers import make_run


def _holding(store: Store, worker: str, who: Identity, *, lease_s: float) -> None:
    """``worker`` (the process ``who``) holds jobs 0-1 in a native batch and 2-3 claimed."""
    store.register_holder(worker, who)
    store.claim("r1", worker=worker, limit=2, lease_s=lease_s)
    assert store.begin_batch(run_id="r1", batch_id="b1", seqs=[0, 1], size_bytes=10,
                             worker=worker, lease_s=lease_s)
    assert [c.seq for c in store.claim("r1", worker=worker, limit=2, lease_s=lease_s)] == [2, 3]


def test_a_dead_process_of_this_host_gives_its_claims_back_at_once(store: Store) -> None:
    make_run(store, n=6)
    child = subprocess.Popen(["sleep", "60"])
    try:
        who = dataclasses.replace(this_identity(), pid=child.pid,
                                  pid_start=_start_ticks(child.pid))
        _holding(store, "dead-one", who, lease_s=600)
        assert store.reap_gone_holders().holders == 0  # alive: nothing taken
        assert [c.seq for c in store.claim("r1", worker="w2", limit=9, lease_s=60)] == [4, 5]
    finally:
        child.kill()
        child.wait()
    reaped = store.reap_gone_holders()
    assert (reaped.holders, reaped.jobs, reaped.batches) == (1, 2, 1)
    assert [c.seq for c in store.claim("r1", worker="w2", limit=9, lease_s=60)] == [2, 3]
    assert [b.id for b in store.own_batches("r1", worker="w2")] == ["b1"]
    assert store.reap_gone_holders().holders == 0  # forgotten


def test_a_live_holder_on_another_host_keeps_its_claims_until_its_lease_ends(
        store: Store) -> None:
    make_run(store, n=4)
    # Its pid means nothing here (no such process on this host): only its lease counts.
    elsewhere = dataclasses.replace(this_identity(), host="elsewhere", pid=2 ** 22 + 7)
    _holding(store, "far-one", elsewhere, lease_s=1.0)
    assert store.reap_gone_holders().holders == 0
    assert store.claim("r1", worker="w2", limit=9, lease_s=60) == []
    assert store.own_batches("r1", worker="w2") == []
    time.sleep(1.2)  # its lease ran out (on the database's clock on PostgreSQL)
    assert [c.seq for c in store.claim("r1", worker="w2", limit=9, lease_s=60)] == [2, 3]
    assert [b.id for b in store.own_batches("r1", worker="w2")] == ["b1"]


def test_a_reused_pid_or_a_reboot_is_gone_another_container_is_not() -> None:
    me = this_identity()
    assert not is_gone(me, me)
    assert is_gone(dataclasses.replace(me, pid_start=me.pid_start + 1), me)  # pid reused
    assert is_gone(dataclasses.replace(me, boot_id="another-boot"), me)
    assert not is_gone(dataclasses.replace(me, pid=2 ** 22 + 7, pid_ns="pid:[1]"), me)
    assert not is_gone(dataclasses.replace(me, pid=2 ** 22 + 7, host="elsewhere"), me)
    assert is_gone(dataclasses.replace(me, pid=2 ** 22 + 7), me)


def test_an_id_of_this_process_is_recorded_and_dropped_on_a_clean_end(store: Store) -> None:
    make_run(store, n=3)
    worker = new_worker_id("agent-")
    store.claim("r1", worker=worker, limit=2, lease_s=600)
    store.claim("r1", worker="not-minted", limit=1, lease_s=600)
    with store.engine.connect() as conn:
        rows = conn.execute(select(S.holders)).mappings().all()
    assert [(r["id"], r["pid"]) for r in rows] == [(worker, this_identity().pid)]
    assert store.reap_gone_holders().holders == 0  # this process lives
    assert store.drop_holder(worker).jobs == 2
    assert [c.seq for c in store.claim("r1", worker="w2", limit=9, lease_s=60)] == [0, 1]


def test_claims_given_back_after_a_cancel_are_canceled_not_sent_again(store: Store) -> None:
    """A cancel that ran while a process still held jobs (it cancels what is not held)
    and the holder giving them back afterwards: a canceled run sends nothing more, so
    they become canceled, not pending; another run's claims come back as before."""
    make_run(store, n=3)
    make_run(store, n=2, run_id="r2")
    worker = new_worker_id("agent-")
    store.claim("r1", worker=worker, limit=2, lease_s=600)
    store.claim("r2", worker=worker, limit=1, lease_s=600)
    store.update_run("r1", status=RunStatus.CANCELED)
    assert store.cancel_unsent("r1") == 1  # the one not held
    assert store.drop_holder(worker).jobs == 3
    assert store.counts("r1")[JobStatus.CANCELED] == 3
    assert store.counts("r1")[JobStatus.PENDING] == 0
    assert [c.seq for c in store.claim("r2", worker="w2", limit=9, lease_s=60)] == [0, 1]


def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[19])
