"""A fleet's ledger through PgBouncer in transaction pooling mode (issue 29, item 4).

Behind a pooler in transaction mode one client connection's statements run on whichever
server connection is free: a session-level advisory lock may be taken on one and never
released, and a statement psycopg prepared (it does after 5 executions) is missing on
the next. With ``?pooler=pgbouncer`` in the DSN laneway prepares nothing server-side and
holds its locks only inside transactions. Here two ingests of the same run and two
workers share one run through a PgBouncer with fewer server connections than clients.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import pgserver
from laneway.errors import ConfigError
from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.worker import WorkerConfig, work
from laneway.store import open_store
from laneway.store.settings import StoreSettings
from laneway.store.statuses import JobStatus
from pgbouncer import PgBouncer

pytestmark = pytest.mark.postgres


def test_the_dsn_names_the_pooler() -> None:
    pooled = StoreSettings.from_dsn("postgresql://u@h:6432/db?sslmode=disable&pooler=pgbouncer")
    assert pooled.pooled and pooled.url == "postgresql+psycopg://u@h:6432/db?sslmode=disable"
    direct = StoreSettings.from_dsn("postgresql://u@h/db?sslmode=disable")
    assert not direct.pooled and direct.url.endswith("db?sslmode=disable")
    with pytest.raises(ConfigError, match="pooler='session'"):
        StoreSettings.from_dsn("postgresql://u@h/db?pooler=session")


@pytest.fixture(scope="module")
def bouncer() -> Iterator[tuple[str, PgBouncer]]:
    try:
        server = pgserver.find_postgres()
        pgserver.wait_ready(server)
        bouncer = PgBouncer.start(server, pool_size=2)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL or PgBouncer: {exc}")
    yield server, bouncer
    bouncer.stop()


@pytest.fixture
def pooled_dsn(bouncer: tuple[str, PgBouncer]) -> Iterator[str]:
    """A fresh database reached through the pooler (a database, not a schema: PgBouncer
    does not pass the ``options`` that set a schema's search path)."""
    server, pool = bouncer
    name = f"b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pool.dsn(name)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.local_config(ttft_ms=2)
async def test_two_ingests_and_two_workers_share_a_run_through_pgbouncer(
    pooled_dsn: str, local_api: RunningLocal, tmp_path: Path,
) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n"
                           for i in range(200)))

    async def ingest() -> int:
        report = await run(inp, config=RunConfig(db=pooled_dsn, no_work=True,
                                                 run_name="pooled"))
        return report.pending

    # Two ingests of one new run at once: the second waits for the first, writes nothing
    # twice (its lock is a transaction's, so the pooler cannot lose it).
    pending = await asyncio.wait_for(asyncio.gather(ingest(), ingest()), timeout=60)
    assert pending == [200, 200]
    providers = [Provider.at(local_api.base_url) for _ in range(2)]
    try:
        reports = await asyncio.wait_for(asyncio.gather(*(
            work(WorkerConfig(db=pooled_dsn, lease_s=10, worker_id=f"w{i}", claim_size=20),
                 provider=provider)
            for i, provider in enumerate(providers))), timeout=120)
    finally:
        for provider in providers:
            await provider.aclose()
    assert all(r.runs["pooled"].finished for r in reports)
    assert sum(r.runs["pooled"].succeeded for r in reports) == 200
    store = open_store(pooled_dsn)
    try:
        counts = store.counts("pooled")
        assert counts[JobStatus.SUCCEEDED] == 200 and counts.total == 200
        assert store.open_runs() == []
    finally:
        store.close()
