"""The native runner on a PostgreSQL ledger: the same SQL must hold on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import pgserver
from laneway.local import LocalConfig, RunningLocal
from laneway.local.faults import FaultPlan
from laneway.provider.client import Provider
from laneway.runs.library import run
from laneway.store import BatchStatus, open_store
from laneway.store.statuses import JobStatus

from .helpers import make_input, read_output, server_batches
from .test_native import DEFAULTS, fast

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    try:
        server = pgserver.find_postgres()
        pgserver.wait_ready(server)
    except Exception as exc:  # no binaries, or it would not start: say why
        pytest.skip(f"no PostgreSQL: {exc}")
    name, dsn = pgserver.new_schema(server)
    yield dsn
    pgserver.drop_schema(server, name)


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=0.1)], indirect=True)
async def test_native_on_postgres(tmp_path: Path, local_api: RunningLocal, pg_dsn: str) -> None:
    local_api.api.batches.faults = FaultPlan.parse("529=0.2", seed=5)
    inp = make_input(tmp_path / "in.jsonl", 30)
    provider = Provider.at(local_api.base_url)
    summary = await run(inp, tmp_path / "out.jsonl", provider=provider, db=pg_dsn,
                        mode="native", defaults=DEFAULTS, native=fast(max_requests=12),
                        max_attempts=10)
    again = await run(inp, tmp_path / "again.jsonl", provider=provider, db=pg_dsn,
                      mode="native", defaults=DEFAULTS, native=fast(max_requests=12))
    await provider.aclose()
    assert (summary.succeeded, summary.pending, summary.mode) == (30, 0, "native")
    assert summary.retries > 0 and again.requests == 0
    assert (tmp_path / "out.jsonl").read_text() == (tmp_path / "again.jsonl").read_text()
    assert [r["custom_id"] for r in read_output(tmp_path / "out.jsonl")] == \
        [f"doc-{i}" for i in range(30)]
    store = open_store(pg_dsn)
    rows = store.run_batches(summary.run_id)
    assert {r.status for r in rows} == {BatchStatus.ENDED}
    assert store.usage_by_model(summary.run_id)[0][0] == DEFAULTS.model
    store.close()
    assert len(await server_batches(local_api.base_url)) == len(rows)


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=0.1)], indirect=True)
async def test_workers_share_a_native_run(tmp_path: Path, local_api: RunningLocal, pg_dsn: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A native run enqueued for workers: two of them send it as batches between them,
    each chunk once, and each job's result once."""
    from laneway.runs.worker import WorkerConfig, work

    monkeypatch.setenv("LANEWAY_BATCH_POLL_S", "0.05,0.3")
    monkeypatch.setenv("LANEWAY_BATCH_MAX_REQUESTS", "8")
    inp = make_input(tmp_path / "in.jsonl", 40)
    enqueued = await run(inp, db=pg_dsn, mode="native", defaults=DEFAULTS, no_work=True,
                         run_name="shared")
    assert enqueued.pending == 40
    providers = [Provider.at(local_api.base_url) for _ in range(2)]
    try:
        reports = await asyncio.gather(*(
            work(WorkerConfig(db=pg_dsn, worker_id=f"w{i}"), provider=p)
            for i, p in enumerate(providers)))
    finally:
        for p in providers:
            await p.aclose()
    assert sum(r.runs["shared"].succeeded for r in reports) == 40
    store = open_store(pg_dsn)
    try:
        assert store.counts("shared")[JobStatus.SUCCEEDED] == 40
        rows = store.run_batches("shared")
        assert {r.status for r in rows} == {BatchStatus.ENDED}
        assert sum(r.request_count for r in rows) == 40
    finally:
        store.close()
    assert len(await server_batches(local_api.base_url)) == len(rows)
