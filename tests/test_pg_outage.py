"""A PostgreSQL outage mid-run: a worker rides it out and every job is answered once.

The database is a private server of the test's own (``pgserver.TempPostgres``), stopped
(every connection cut) and started again while a worker process works; the local API
on loopback counts what it answered per job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pgserver
from laneway.local import LocalConfig, start_local
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import open_store
from laneway.store.statuses import JobStatus

LANEWAY = [sys.executable, "-m", "laneway"]

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def server() -> Iterator[pgserver.TempPostgres]:
    try:
        pg = pgserver.TempPostgres.start()
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    yield pg
    pg.stop()


@pytest.fixture
def dsn(server: pgserver.TempPostgres) -> Iterator[str]:
    name, schema_dsn = pgserver.new_schema(server.dsn)
    yield schema_dsn
    pgserver.drop_schema(server.dsn, name)


def write_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"outage job {i}"})
                            + "\n" for i in range(n)))
    return path


def worker(dsn: str, base_url: str, **env_extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="200", **env_extra)
    return subprocess.Popen([*LANEWAY, "worker", "--db", dsn, "--concurrency", "4",
                             "--lease", "30", "-q"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


async def test_worker_rides_out_a_database_outage(server: pgserver.TempPostgres, dsn: str,
                                                 tmp_path: Path) -> None:
    """The server is down for 4 s mid-run, while the worker claims (small claims) and
    records results: it waits, carries on, finishes, and the API answered each of the
    400 jobs exactly once (before: the first claim that failed ended the worker)."""
    n = 400
    await run(write_input(tmp_path / "in.jsonl", n),
              config=RunConfig(db=dsn, no_work=True, run_name="out"))
    api = start_local(LocalConfig(ttft_ms=20))
    provider = Provider.at(api.base_url)
    task = asyncio.create_task(work(
        WorkerConfig(db=dsn, concurrency=4, claim_size=16, lease_s=30, worker_id="w"),
        provider=provider))
    try:
        deadline = time.monotonic() + 60
        while api.api.completions.total < 40:
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.02)
        await asyncio.to_thread(server.down)
        try:
            await asyncio.sleep(4)
            assert not task.done()  # still there, waiting for the ledger
        finally:
            await asyncio.to_thread(server.up)
        report = await asyncio.wait_for(task, timeout=60)
        assert report.runs["out"].finished and report.runs["out"].succeeded == n
        done = api.api.completions
        assert not done.more_than_once(), done.more_than_once()
        assert done.total == n and len(done.answered) == n
        store = open_store(dsn)
        try:
            assert store.counts("out")[JobStatus.SUCCEEDED] == n
        finally:
            store.close()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await provider.aclose()
        api.stop(wait=False)


def test_an_outage_longer_than_the_bound_fails_in_one_line(
    server: pgserver.TempPostgres, dsn: str, tmp_path: Path,
) -> None:
    """With LANEWAY_DB_OUTAGE_S=2 and the server away longer, the worker stops with one
    line (no traceback), exit 2; what it recorded stays recorded."""
    asyncio.run(run(write_input(tmp_path / "in.jsonl", 200),
                    config=RunConfig(db=dsn, no_work=True, run_name="long")))
    api = start_local(LocalConfig(ttft_ms=50))
    proc = worker(dsn, api.base_url, LANEWAY_DB_OUTAGE_S="2")
    try:
        deadline = time.monotonic() + 60
        while api.api.completions.total < 20:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
            time.sleep(0.02)
        server.down()
        try:
            _, err = proc.communicate(timeout=60)
        finally:
            server.up()
        assert proc.returncode == 2, err
        assert "Traceback" not in err
        errors = [line for line in err.splitlines() if "error" in line]
        assert len(errors) == 1, err
        assert "has been unreachable for 2 s" in errors[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        api.stop(wait=False)
