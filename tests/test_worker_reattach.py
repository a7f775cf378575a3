"""A ``laneway worker`` killed with SIGKILL while it holds claims under a 120 s lease: the
next worker on this host takes its jobs at once (the holder's pid is dead), not after the
lease; every job is recorded once (issue 29, item 2)."""

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
from sqlalchemy import func, select

from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

LANEWAY = str(Path(sys.executable).with_name("laneway"))
N = 200

pytestmark = pytest.mark.postgres



def _held(dsn: str) -> int:
    store = open_store(dsn)
    try:
        with store.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).where(
                S.jobs.c.status == JobStatus.CLAIMED)) or 0)
    finally:
        store.close()


def kill_a_worker_holding_claims(pg: str, upstream: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    doomed = subprocess.Popen(
        [LANEWAY, "worker", "--db", pg, "--lease", "120", "-q", "--concurrency", "4"],
        env={**env, "ANTHROPIC_BASE_URL": upstream},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _held(pg) == 0:
            assert doomed.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        doomed.send_signal(signal.SIGKILL)
        doomed.wait()


@pytest.mark.local_config(ttft_ms=200)
async def test_a_killed_workers_claims_are_taken_at_once(pg: str, local_api: RunningLocal,
                                                         tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n"
                           for i in range(N)))
    await run(inp, config=RunConfig(db=pg, no_work=True, run_name="big"))
    kill_a_worker_holding_claims(pg, local_api.base_url)
    assert _held(pg) > 0  # it died holding claims under a 120 s lease
    started = time.monotonic()
    report = await asyncio.wait_for(work(
        WorkerConfig(db=pg, lease_s=120, worker_id="w-next", claim_size=50, concurrency=32),
        provider=Provider.at(local_api.base_url)), timeout=60)
    assert report.runs["big"].finished and time.monotonic() - started < 60
    store = open_store(pg)
    try:
        counts = store.counts("big")
        assert counts[JobStatus.SUCCEEDED] == N and counts.remaining == 0
        ids = [cid for cid, _ in store.iter_results("big")]
        assert len(ids) == N and len(set(ids)) == N  # none lost, none twice
    finally:
        store.close()
