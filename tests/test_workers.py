"""Several workers on one run, on a real PostgreSQL and the local API over loopback.

The PostgreSQL server is ``$LANEWAY_TEST_PG`` or a private one started from Debian's
binaries (see ``tests/pgserver.py``); without either these tests are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from laneway.errors import ConfigError
from laneway.governor.core import Governor
from laneway.governor.pauses import PauseSync
from laneway.local import RunningLocal
from laneway.local.server import free_port
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import AsyncStore, open_store
from laneway.store import schema as S
from laneway.store.leases import new_worker_id
from laneway.store.statuses import JobStatus

LANEWAY = str(Path(sys.executable).with_name("laneway"))




def write_input(path: Path, n: int) -> Path:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n")
    return path


def test_worker_ids_are_unique() -> None:
    ids = {new_worker_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(i.split("-")[-2] == str(os.getpid()) for i in ids)


async def test_pauses_are_shared_between_governors(tmp_path: Path) -> None:
    store = open_store(tmp_path / "l.db")
    a_store, b_store = AsyncStore(store), AsyncStore(store)
    a_gov, b_gov = Governor(), Governor()
    a, b = PauseSync(a_store, a_gov), PauseSync(b_store, b_gov)
    try:
        a_gov.pause("m", 2.0, reason="429")  # what a 429 does in worker a
        await a.aclose()  # the publish has landed
        assert a.published == 1
        assert await b.poll() == 1
        left = b_gov.state("m").paused_until - b_gov.clock()
        assert 1.5 < left <= 2.0
        assert b_gov.history[-1]["kind"] == "pause"
        assert b_gov.history[-1]["reason"] == "shared: 429"
        # Known pauses are not applied again; b's own pause is not echoed back to it.
        assert await b.poll() == 0 and await a.poll() == 0
        assert b.published == 0
    finally:
        a_store.close()
        b_store.close()
        store.close()


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    proc = subprocess.run([LANEWAY, "worker", "--db", str(tmp_path / "l.db")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "needs a PostgreSQL ledger" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.postgres
@pytest.mark.local_config(ttft_ms=5, faults="429=0.02", fault_retry_after_s=1, seed=3)
async def test_two_workers_share_a_run_and_its_pauses(
    pg: str, local_api: RunningLocal, tmp_path: Path,
) -> None:
    inp = write_input(tmp_path / "in.jsonl", 300)
    enqueued = await run(inp, config=RunConfig(db=pg, no_work=True, run_name="shared"))
    assert enqueued.pending == 300
    # Claims of 25 (not 256 of the 300): a worker that starts late on a loaded machine
    # still finds jobs to claim.
    reports = await asyncio.gather(*(
        work(WorkerConfig(db=pg, lease_s=10, worker_id=f"w{i}", claim_size=25),
             provider=Provider.at(local_api.base_url))
        for i in range(2)))
    assert all(r.runs["shared"].finished for r in reports)
    # Every job once, split between the two; each 429 was held by everyone.
    assert sum(r.runs["shared"].succeeded for r in reports) == 300
    assert all(r.runs["shared"].succeeded > 0 for r in reports)
    assert sum(r.runs["shared"].rate_limited for r in reports) >= 1
    assert sum(r.pauses_published for r in reports) >= 1
    assert sum(r.pauses_applied for r in reports) >= 1
    store = open_store(pg)
    try:
        counts = store.counts("shared")
        assert counts[JobStatus.SUCCEEDED] == 300 and counts.total == 300
        run_row = store.get_run("shared")
        assert run_row is not None and run_row.status == "done"
        assert store.open_runs() == []
    finally:
        store.close()


@pytest.mark.postgres
async def test_follow_waits_for_new_runs_and_stops_cleanly(
    pg: str, local_api: RunningLocal, tmp_path: Path,
) -> None:
    stop = asyncio.Event()
    worker = asyncio.create_task(work(
        WorkerConfig(db=pg, follow=True, poll_s=0.1, worker_id="follower"),
        provider=Provider.at(local_api.base_url), stop_event=stop))
    await asyncio.sleep(0.3)
    assert not worker.done()  # nothing to do yet, and it waits
    inp = write_input(tmp_path / "in.jsonl", 40)
    await run(inp, config=RunConfig(db=pg, no_work=True, run_name="later"))
    store = open_store(pg)
    try:
        for _ in range(600):  # the follower picks the new run up within 30 s
            if not store.counts("later").remaining:
                break
            await asyncio.sleep(0.05)
        assert store.counts("later")[JobStatus.SUCCEEDED] == 40
    finally:
        store.close()
    stop.set()
    report = await asyncio.wait_for(worker, timeout=10)
    assert report.stopped and report.runs["later"].finished
    assert report.runs["later"].succeeded == 40


@pytest.mark.postgres
async def test_a_named_run_that_does_not_exist(pg: str, local_api: RunningLocal) -> None:
    with pytest.raises(ConfigError, match="no run named 'nope'"):
        await work(WorkerConfig(db=pg, run_id="nope"), provider=Provider.at(local_api.base_url))


@pytest.mark.timing
@pytest.mark.postgres
@pytest.mark.timeout(120)
def test_killed_worker_loses_nothing_and_duplicates_nothing(pg: str, tmp_path: Path) -> None:
    """2,000 jobs, 3 worker processes, one killed with SIGKILL mid-run: its jobs come
    back when its 3 s lease runs out, and every job is in the results exactly once."""
    n = 2000
    inp = write_input(tmp_path / "in.jsonl", n)
    port = free_port()
    env = {**os.environ, "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
    env.pop("ANTHROPIC_API_KEY", None)
    api = subprocess.Popen([LANEWAY, "local", "--engine", "echo", "--port", str(port),
                            "--ttft-ms", "20"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    workers: dict[str, subprocess.Popen[str]] = {}
    try:
        subprocess.run([LANEWAY, "run", str(inp), "--db", pg, "--no-work", "--run", "big"],
                       check=True, env=env, capture_output=True, timeout=60)

        def start(name: str) -> None:
            workers[name] = subprocess.Popen(
                [LANEWAY, "worker", "--db", pg, "--lease", "3", "--id", name, "-q"],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

        store = open_store(pg)
        try:
            # The doomed worker first, the others once it holds jobs: started together, a
            # slow start (a loaded machine) could leave it nothing to claim.
            start("w-doomed")
            _wait_until_working(store, "w-doomed", min_done=0)
            start("w-a")
            start("w-b")
            held, done_at_kill = _wait_until_working(store, "w-doomed", min_done=300)
            workers["w-doomed"].send_signal(signal.SIGKILL)
            assert held > 0  # it died holding claimed jobs
            outputs = {}
            for name in ("w-a", "w-b"):
                out, _ = workers[name].communicate(timeout=90)
                outputs[name] = out
                assert workers[name].returncode == 0, out
            counts = store.counts("big")
            assert counts[JobStatus.SUCCEEDED] == n and counts.remaining == 0, counts
            assert done_at_kill < n
        finally:
            store.close()
        results = tmp_path / "results.jsonl"
        subprocess.run([LANEWAY, "results", "big", "--db", pg, "-o", str(results)],
                       check=True, capture_output=True, timeout=60)
        lines = [json.loads(line) for line in results.read_text().splitlines()]
        ids = [line["custom_id"] for line in lines]
        assert len(ids) == n and len(set(ids)) == n  # none lost, none twice
        assert ids == [f"job-{i}" for i in range(n)]  # in input order
        assert {line["result"]["type"] for line in lines} == {"succeeded"}
    finally:
        for proc in (*workers.values(), api):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _wait_until_working(store: object, worker: str, *, min_done: int,
                        timeout_s: float = 60.0) -> tuple[int, int]:
    """Wait until ``min_done`` jobs are done and ``worker`` holds claimed jobs; returns
    (jobs it holds, jobs done)."""
    from sqlalchemy import func, select

    from laneway.store import Store

    assert isinstance(store, Store)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = store.counts("big")[JobStatus.SUCCEEDED]
        with store.engine.connect() as conn:
            held = int(conn.scalar(select(func.count()).where(
                S.jobs.c.run_id == "big", S.jobs.c.status == JobStatus.CLAIMED,
                S.jobs.c.claimed_by == worker)) or 0)
        if done >= min_done and held > 0:
            return held, done
        time.sleep(0.05)
    raise AssertionError(f"{worker} never got to work ({done} done)")


@pytest.mark.postgres
def test_a_refused_key_stops_the_worker_with_exit_2_and_jobs_pending(
        pg: str, tmp_path: Path) -> None:
    """Before: the worker recorded every job as errored (authentication_error)."""
    from laneway.local import LocalConfig, start_local

    inp = write_input(tmp_path / "in.jsonl", 50)
    running = start_local(LocalConfig(api_key="right"))
    try:
        env = {**os.environ, "ANTHROPIC_BASE_URL": running.base_url,
               "ANTHROPIC_API_KEY": "wrong"}
        subprocess.run([LANEWAY, "run", str(inp), "--db", pg, "--no-work", "--run", "keyed"],
                       check=True, env=env, capture_output=True, timeout=60)
        res = subprocess.run([LANEWAY, "worker", "--db", pg, "--run", "keyed",
                              "--concurrency", "4", "-q"],
                             env=env, capture_output=True, text=True, timeout=60)
        assert res.returncode == 2, res.stderr
        errors = [x for x in res.stderr.splitlines() if x.startswith("laneway: error")]
        assert len(errors) == 1 and "refused the key (401" in errors[0], res.stderr
        assert running.api.completions.completed == 0
        store = open_store(pg)
        try:
            counts = store.counts("keyed")
            assert counts[JobStatus.PENDING] == 50 and counts[JobStatus.ERRORED] == 0, counts
        finally:
            store.close()
    finally:
        running.stop()
