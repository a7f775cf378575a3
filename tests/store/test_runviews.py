"""A run looked into, from the ledger alone: its timeline (outcomes and the runner's
samples), its jobs a keyset page at a time, one job whole, the re-send of what errored
or expired; and the gateway's traffic over a window, Message Batches included."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy import update

from laneway.store import Store
from laneway.store import schema as S
from laneway.store.gateway_batches import GatewayBatch
from laneway.store.reservations import Reservation
from laneway.store.runviews import RunSample, bucket_width_s
from laneway.store.statuses import JobStatus

from .helpers import done, make_run
from .test_traffic import rec

T0 = 1_700_000_000.0


def _at(store: Store, run_id: str, seqs: range, at: float) -> None:
    """Say the jobs finished at ``at``."""
    with store.engine.begin() as conn:
        conn.execute(update(S.jobs).where(S.jobs.c.run_id == run_id,
                                          S.jobs.c.seq.in_(list(seqs))).values(finished_at=at))


def test_bucket_widths_are_round() -> None:
    assert bucket_width_s(0) == 1.0
    assert bucket_width_s(59) == 1.0
    assert bucket_width_s(61) == 2.0
    assert bucket_width_s(250) == 5.0
    assert bucket_width_s(3600) == 100.0
    assert bucket_width_s(7 * 86400) == 20000.0


def test_the_timeline_is_drawn_from_outcomes_and_samples(store: Store) -> None:
    run = make_run(store, n=10)
    store.finish([done(run, s, cost_usd=0.5, tokens=(10, 5)) for s in range(6)])
    store.finish([done(run, s, status=JobStatus.ERRORED) for s in (6, 7)])
    store.cancel_unsent(run)  # 8, 9: never sent, not in the throughput
    _at(store, run, range(0, 4), T0)
    _at(store, run, range(4, 8), T0 + 30)
    for i, use in enumerate([0.2, 0.9, None]):
        store.add_run_sample(RunSample(run, T0 + 10 * i, done=i, in_flight=3 - i,
                                       limit_use=use, limit_use_by_bucket={}))
    tl = store.run_timeline(run, buckets=60)
    assert tl["bucket_s"] == 1.0 and tl["start"] == T0 and tl["end"] == T0 + 30
    rows = tl["buckets"]
    assert len(rows) == 31  # every second, empty ones included
    assert (rows[0]["succeeded"], rows[0]["errored"], rows[0]["cost_usd"]) == (4, 0, 2.0)
    assert (rows[30]["succeeded"], rows[30]["errored"]) == (2, 2)
    assert rows[30]["input_tokens"] == 20 + 2 * 10  # an errored job's usage, if any
    assert sum(r["succeeded"] + r["errored"] for r in rows) == 8
    assert [rows[i]["limit_use"] for i in (0, 10, 20)] == [0.2, 0.9, None]
    assert [rows[i]["in_flight"] for i in (0, 10, 20, 5)] == [3, 2, 1, None]
    wide = store.run_timeline(run, buckets=3)
    assert wide["bucket_s"] == 10.0 and len(wide["buckets"]) == 4
    assert wide["buckets"][0]["limit_use"] == 0.2
    assert store.run_timeline(make_run(store, "empty", n=2))["buckets"] == []


def test_jobs_are_paged_by_keyset_filtered_and_searched(store: Store) -> None:
    run = make_run(store, n=25)
    store.finish([replace(done(run, s, status=JobStatus.ERRORED), error_message="x" * 500)
                  for s in (3, 13, 23)])
    seen, after, more = [], None, True
    while more:
        page, more = store.job_page(run, after_seq=after, limit=10)
        seen += [r["custom_id"] for r in page]
        after = page[-1]["seq"]
    assert seen == [f"j{i}" for i in range(25)]
    back, more = store.job_page(run, before_seq=20, limit=10)
    assert [r["seq"] for r in back] == list(range(10, 20)) and more
    back, more = store.job_page(run, before_seq=5, limit=10)
    assert [r["seq"] for r in back] == list(range(5)) and not more
    errored, more = store.job_page(run, statuses=["errored"])
    assert [r["seq"] for r in errored] == [3, 13, 23] and not more
    assert len(errored[0]["error_message"]) == 160
    found, _ = store.job_page(run, search="j1")
    assert [r["custom_id"] for r in found] == ["j1"] + [f"j{i}" for i in range(10, 20)]
    assert store.job_page(run, search="%")[0] == []  # LIKE's wildcards are plain text
    assert store.job_page(run, statuses=["errored"], search="3")[0][1]["seq"] == 13


def test_one_job_whole(store: Store) -> None:
    run = make_run(store, n=3)
    store.finish([done(run, 1, text="the answer", cost_usd=0.25)])
    job = store.job_detail(run, "j1")
    assert job is not None
    assert job["params"]["messages"][0]["content"] == "job 1"
    assert job["result"]["message"]["content"][0]["text"] == "the answer"
    assert (job["status"], job["attempts"], job["cost_usd"], job["line"]) == (
        "succeeded", 1, 0.25, 2)
    assert store.job_detail(run, "j0")["result"] is None  # type: ignore[index]
    assert store.job_detail(run, "nope") is None


def test_resend_makes_errored_and_expired_jobs_pending_again(store: Store) -> None:
    run = make_run(store, n=6)
    store.finish([done(run, 0), done(run, 1, status=JobStatus.ERRORED),
                  done(run, 2, status=JobStatus.EXPIRED)])
    with store.engine.begin() as conn:  # a bad input line: sending it cannot succeed
        conn.execute(update(S.jobs).where(S.jobs.c.run_id == run, S.jobs.c.seq == 3).values(
            status=JobStatus.ERRORED, mode="ingest"))
    assert store.resendable(run) == 2
    assert store.resend(run) == 2
    assert store.counts(run)[JobStatus.PENDING] == 4  # 1, 2 and the two never sent
    again = store.job_detail(run, "j1")
    assert again is not None
    assert (again["status"], again["result"], again["error_type"], again["attempts"]) == (
        "pending", None, None, 1)
    assert store.job_detail(run, "j3")["status"] == "errored"  # type: ignore[index]
    assert store.resendable(run) == 0 and store.resend(run) == 0
    assert not store.is_gateway_batch(run)


def _batch(store: Store, batch_id: str, key_id: str | None, ended_at: float | None) -> None:
    store.add_gateway_batch(GatewayBatch(
        id=batch_id, key_id=key_id, request_count=4, created_at=T0, expires_at=T0 + 86400,
        deadline_at=None, mode="native", plan=None, input_path=None, rejected=[],
        cancel_initiated_at=None, ended_at=ended_at))


def test_traffic_history_counts_requests_and_batches_by_key(store: Store) -> None:
    alice, _ = store.create_key("alice")
    store.record_requests([rec(alice.id, cost=0.25, at=T0), rec(None, cost=1.0, at=T0),
                           rec(alice.id, cost=5.0, at=T0 - 7200)])  # before the window
    make_run(store, "msgbatch_a", n=4)
    _batch(store, "msgbatch_a", alice.id, ended_at=T0 + 60)
    store.reserve(Reservation(key_id=alice.id, model="claude-haiku-4-5", lane="background",
                              streamed=False, worst_usd=2.0, started_at=T0,
                              process="p", batch_id="msgbatch_a"))
    store.finish([done("msgbatch_a", s, cost_usd=0.125) for s in range(3)]
                 + [done("msgbatch_a", 3, status=JobStatus.ERRORED, cost_usd=None)])
    in_flight = store.traffic_history(T0 - 3600, 60)["keys"]
    assert [r["lane"] for r in in_flight] == ["interactive", "interactive"]  # reserved
    assert store.settle_batch("msgbatch_a", at=T0 + 60) is not None
    assert store.is_gateway_batch("msgbatch_a")
    found = store.traffic_history(T0 - 3600, 60)
    rows = [(r["key"], r["lane"], r["requests"], r["errors"], r["cost_usd"])
            for r in found["keys"]]
    assert rows == [("alice", "batch", 4, 0, 0.375), ("alice", "interactive", 1, 0, 0.25),
                    ("local", "interactive", 1, 0, 1.0)]
    assert sum(b["requests"] for b in found["timeline"]) == 3  # the batch's row is one
    assert pytest.approx(sum(b["cost_usd"] for b in found["timeline"])) == 1.625
