"""``laneway run`` on PostgreSQL records itself in ``holders`` while it holds claims (so a
process of its host can tell when it is gone, issue 29 item 2), and a clean end gives
its row back: a finished run leaves no holder behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from laneway.local import RunningLocal
from laneway.provider.client import Provider
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.store import open_store
from laneway.store import schema as S

pytestmark = pytest.mark.postgres


def _holders(dsn: str) -> int:
    store = open_store(dsn)
    try:
        with store.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(S.holders)) or 0)
    finally:
        store.close()


async def test_a_clean_end_of_laneway_run_leaves_no_holder_row(
        pg: str, local_api: RunningLocal, tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": f"say {i}"}) + "\n"
                           for i in range(20)))
    seen: list[int] = []
    provider = Provider.at(local_api.base_url)
    try:
        summary = await run(inp, config=RunConfig(db=pg, concurrency=2), provider=provider,
                            on_progress=lambda _p: seen.append(_holders(pg)))
    finally:
        await provider.aclose()
    assert summary.succeeded == 20
    assert max(seen, default=0) == 2  # recorded while it held claims and a rate share ...
    assert _holders(pg) == 0  # ... and gave its row back as it ended
