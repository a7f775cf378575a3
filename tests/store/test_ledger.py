"""The ledger on SQLite and PostgreSQL: runs, ingest, claims, leases, results once."""

from __future__ import annotations

import asyncio
import time

import pytest

from laneway.errors import InputError
from laneway.jobs.formats import BadLine, Job
from laneway.store import AsyncStore, GroupWriter, Store
from laneway.store.statuses import JobStatus

from .helpers import done, job_rows, make_run, params


def test_create_and_get_runs(store: Store) -> None:
    run = store.create_run(run_id="a", fingerprint="f", options={"model": "m"},
                           mode="realtime", provider="local", input_path="x.jsonl",
                           input_sha256=None, budget_usd=1.5)
    assert run.id == "a" and run.status == "ingesting" and run.total == 0
    assert run.options == {"model": "m"} and run.budget_usd == 1.5
    # Creating the same run again (another worker got there first) returns it.
    again = store.create_run(run_id="a", fingerprint="f", options={}, mode="realtime",
                             provider="local", input_path=None, input_sha256=None)
    assert again.created_at == run.created_at
    time.sleep(0.01)
    store.create_run(run_id="b", fingerprint="g", options={}, mode="native",
                     provider="local", input_path=None, input_sha256=None)
    assert [r.id for r in store.list_runs()] == ["b", "a"]
    assert store.get_run("missing") is None
    store.update_run("a", status="done")
    assert [r.id for r in store.open_runs()] == ["b"]


def test_ingest_in_chunks(store: Store) -> None:
    make_run(store, n=10, chunk=4)
    run = store.get_run("r1")
    assert run is not None and run.total == 10 and run.ingest_done
    assert run.ingested_lines == 10
    rows = job_rows(store, "r1", range(10))
    assert [r["custom_id"] for r in sorted(rows, key=lambda r: r["seq"])] == \
        [f"j{i}" for i in range(10)]
    assert {r["status"] for r in rows} == {JobStatus.PENDING}


def test_duplicate_id_in_a_later_chunk_names_both_lines(store: Store) -> None:
    make_run(store, n=4, chunk=4)
    with pytest.raises(InputError) as err:
        store.add_jobs("r1", [Job("new", params(), 5), Job("j2", params(), 6)],
                       first_seq=4, last_line=6, path="in.jsonl")
    assert err.value.line == 6 and err.value.field == "custom_id"
    assert "'j2'" in str(err.value) and "first at line 3" in str(err.value)
    # Nothing of the bad chunk was kept.
    assert store.counts("r1").total == 4


def test_duplicate_id_within_one_chunk(store: Store) -> None:
    store.create_run(run_id="r", fingerprint="f", options={}, mode="realtime",
                     provider="local", input_path=None, input_sha256=None)
    with pytest.raises(InputError) as err:
        store.add_jobs("r", [Job("a", params(), 1), Job("b", params(), 2),
                             Job("a", params(), 3)], first_seq=0, last_line=3)
    assert err.value.line == 3 and "first at line 1" in str(err.value)


def test_bad_line_is_recorded_as_errored(store: Store) -> None:
    store.create_run(run_id="r", fingerprint="f", options={}, mode="realtime",
                     provider="local", input_path=None, input_sha256=None)
    bad = BadLine("invalid-line-2", InputError("not JSON", line=2), 2)
    store.add_jobs("r", [Job("a", params(), 1), bad], first_seq=0, last_line=2)
    counts = store.counts("r")
    assert counts[JobStatus.PENDING] == 1 and counts[JobStatus.ERRORED] == 1
    assert [cid for cid, _ in store.iter_results("r")] == ["invalid-line-2"]


def test_claims_come_in_input_order_without_overlap(store: Store) -> None:
    make_run(store, n=10)
    first = store.claim("r1", worker="w1", limit=4, lease_s=60)
    second = store.claim("r1", worker="w2", limit=4, lease_s=60)
    assert [c.seq for c in first] == [0, 1, 2, 3]
    assert [c.seq for c in second] == [4, 5, 6, 7]
    assert first[0].custom_id == "j0" and first[0].params == params("job 0")
    assert first[0].model == "claude-haiku-4-5" and first[0].attempts == 0
    rows = {r["seq"]: r for r in job_rows(store, "r1", range(10))}
    assert rows[0]["claimed_by"] == "w1" and rows[5]["claimed_by"] == "w2"
    assert rows[0]["status"] == JobStatus.CLAIMED and rows[8]["status"] == JobStatus.PENDING
    assert [c.seq for c in store.claim("r1", worker="w3", limit=10, lease_s=60)] == [8, 9]
    assert store.claim("r1", worker="w3", limit=10, lease_s=60) == []


def test_expired_lease_is_reclaimed_by_another_worker(store: Store) -> None:
    make_run(store, n=6)
    # A lease long enough that a loaded machine cannot outrun it between two statements.
    store.claim("r1", worker="dead", limit=3, lease_s=3.0)
    store.claim("r1", worker="alive", limit=1, lease_s=60)
    assert 0.5 < store.lease_wait_s("r1") <= 3.0
    # While the lease lasts, nobody else gets those jobs.
    assert [c.seq for c in store.claim("r1", worker="w2", limit=10, lease_s=60)] == [4, 5]
    time.sleep(3.2)
    assert store.lease_wait_s("r1") == 0.0
    assert store.extend_lease("r1", [0, 1, 2], worker="w2", lease_s=60) == 0
    taken = store.claim("r1", worker="w2", limit=10, lease_s=60)
    assert [c.seq for c in taken] == [0, 1, 2]
    # The dead worker, back from the dead, cannot renew what is no longer its own.
    assert store.extend_lease("r1", [0, 1, 2], worker="dead", lease_s=60) == 0
    assert store.extend_lease("r1", [0, 1, 2], worker="w2", lease_s=60) == 3


def test_renewed_lease_is_not_reclaimed(store: Store) -> None:
    make_run(store, n=2)
    store.claim("r1", worker="w1", limit=2, lease_s=0.3)
    for _ in range(3):
        time.sleep(0.15)
        assert store.extend_lease("r1", [0, 1], worker="w1", lease_s=0.3) == 2
    assert store.claim("r1", worker="w2", limit=10, lease_s=60) == []


def test_release_gives_back_own_jobs_with_attempts(store: Store) -> None:
    make_run(store, n=4)
    store.claim("r1", worker="w1", limit=2, lease_s=60)
    store.claim("r1", worker="w2", limit=2, lease_s=60)
    store.release("r1", [0, 1, 2], worker="w1", attempts={1: (3, 2)})
    rows = {r["seq"]: r for r in job_rows(store, "r1", range(4))}
    assert rows[0]["status"] == rows[1]["status"] == JobStatus.PENDING
    assert rows[1]["attempts"] == 3 and rows[1]["rate_limited"] == 2
    assert rows[0]["claimed_by"] is None and rows[0]["lease_until"] is None
    assert rows[2]["status"] == JobStatus.CLAIMED and rows[2]["claimed_by"] == "w2"
    again = store.claim("r1", worker="w3", limit=10, lease_s=60)
    assert [(c.seq, c.attempts, c.rate_limited) for c in again] == [(0, 0, 0), (1, 3, 2)]
    assert store.release_all("r1") == 4
    assert store.counts("r1")[JobStatus.PENDING] == 4


def test_finish_records_each_result_once(store: Store) -> None:
    make_run(store, n=4)
    store.claim("r1", worker="w1", limit=4, lease_s=60)
    assert store.finish([done("r1", 0, text="first"), done("r1", 1)]) == [0, 1]
    # A late duplicate (another worker, or a retry) changes nothing and counts nothing.
    assert store.finish([done("r1", 0, text="late"), done("r1", 2)]) == [2]
    # Repeated in one group: recorded once, the first one.
    assert store.finish([done("r1", 3, text="a"), done("r1", 3, text="b")]) == [3]
    results = dict(store.iter_results("r1"))
    assert results["j0"]["message"]["content"][0]["text"] == "first"
    assert results["j3"]["message"]["content"][0]["text"] == "a"
    counts = store.counts("r1")
    assert counts[JobStatus.SUCCEEDED] == 4 and counts.remaining == 0
    assert counts.input_tokens == 40 and counts.output_tokens == 20
    assert counts.cost_usd == pytest.approx(0.04)
    row = job_rows(store, "r1", [0])[0]
    assert row["claimed_by"] is None and row["lease_until"] is None
    assert row["finished_at"] is not None and row["mode"] == "realtime"


def test_late_result_from_an_expired_lease_is_kept_once(store: Store) -> None:
    make_run(store, n=2)
    store.claim("r1", worker="slow", limit=2, lease_s=0.1)
    time.sleep(0.2)
    assert [c.seq for c in store.claim("r1", worker="fast", limit=2, lease_s=60)] == [0, 1]
    # The slow worker's answer arrives first: it was paid for, so it is kept...
    assert store.finish([done("r1", 0, text="slow")]) == [0]
    # ...and the new holder's answer for the same job is not counted again.
    assert store.finish([done("r1", 0, text="fast"), done("r1", 1, text="fast")]) == [1]
    assert dict(store.iter_results("r1"))["j0"]["message"]["content"][0]["text"] == "slow"
    assert store.counts("r1")[JobStatus.SUCCEEDED] == 2
    # A finished job is never claimed again.
    assert store.claim("r1", worker="w", limit=10, lease_s=60) == []


def test_counts_and_cost_sums(store: Store) -> None:
    make_run(store, n=5)
    store.finish([done("r1", 0, cost_usd=0.25, tokens=(100, 50)),
                  done("r1", 1, cost_usd=None, tokens=(1, 2)),
                  done("r1", 2, status=JobStatus.ERRORED, cost_usd=None, tokens=(0, 0))])
    c = store.counts("r1")
    assert c.total == 5 and c[JobStatus.SUCCEEDED] == 2 and c[JobStatus.ERRORED] == 1 and c[JobStatus.PENDING] == 2
    assert c.final == 3 and c.remaining == 2
    assert c.input_tokens == 101 and c.output_tokens == 52
    assert c.cost_usd == pytest.approx(0.25) and c.unpriced == 1
    assert store.unpriced_models("r1") == ["claude-haiku-4-5"]


def test_results_come_in_input_order(store: Store) -> None:
    make_run(store, n=7)
    store.finish([done("r1", s) for s in (6, 2, 4)])
    store.finish([done("r1", s) for s in (0, 5)])
    assert [cid for cid, _ in store.iter_results("r1", page=2)] == ["j0", "j2", "j4", "j5",
                                                                    "j6"]
    assert store.last_change("r1") > 0


async def test_group_writer_counts_a_repeated_item_once(store: Store) -> None:
    make_run(store, n=3)
    astore = AsyncStore(store)
    writer = GroupWriter(astore, interval_s=0.05)
    writer.start()
    try:
        outcomes = await asyncio.gather(writer.record(done("r1", 0, text="a")),
                                        writer.record(done("r1", 0, text="b")),
                                        writer.record(done("r1", 1)))
    finally:
        await writer.close()
        astore.close()
    assert outcomes == [True, False, True]
    assert writer.commits == 1


def test_events(store: Store) -> None:
    make_run(store, n=1)
    store.add_event("r1", "progress", {"done": 1})
    store.add_event("r1", "notice", {"text": "hello"})
    store.add_event("r1", "progress", {"done": 2})
    events = store.events_since("r1")
    assert [e["kind"] for e in events] == ["progress", "notice", "progress"]
    assert events[0]["data"] == {"done": 1} and events[0]["at"] > 0
    later = store.events_since("r1", after_id=events[0]["id"], kind="progress")
    assert [e["data"] for e in later] == [{"done": 2}]
    assert store.events_since("other") == []
