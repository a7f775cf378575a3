"""The native runner on a PostgreSQL ledger: the same SQL must hold on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from laneway.local import LocalConfig, RunningLocal
from laneway.local.faults import FaultPlan
from laneway.provider import Provider
from laneway.runs import run
from laneway.store import BatchStatus, open_store

from .helpers import make_input, read_output, server_batches
from .test_native import DEFAULTS, fast

pgserver = pytest.importorskip("laneway.store.pgserver")
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
