"""``laneway run --mode auto`` whose plan is Message Batches, on an upstream without
them (the local API with ``batches=False``: 404): the run is sent realtime once, with a
notice saying why, and its mode in the ledger says so; ``--mode native`` (asked for
outright) fails with one line instead (issue 29, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from laneway.errors import BatchesUnsupportedError
from laneway.local import LocalConfig, RunningLocal
from laneway.provider.client import Provider
from laneway.runners.planner import PlannerOptions
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.store import open_store

ANY_SAVING = PlannerOptions(min_savings_usd=0.0)  # the planner picks batches


@pytest.mark.parametrize("local_api", [LocalConfig(batches=False)], indirect=True)
async def test_an_auto_run_goes_realtime_once(local_api: RunningLocal,
                                              tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"j{i}", "prompt": f"say {i}"}) + "\n"
                           for i in range(20)))
    db = str(tmp_path / "l.db")
    notes: list[str] = []
    summary = await run(inp, config=RunConfig(db=db, mode="auto", planner=ANY_SAVING),
                        provider=Provider.at(local_api.base_url), on_notice=notes.append)
    assert summary.plan is not None and summary.plan.startswith("native")
    assert summary.mode == "realtime" and summary.succeeded == 20
    assert local_api.api.stats["requests"] == 20  # each once
    assert any("no Message Batches (HTTP 404" in n for n in notes)
    store = open_store(db)
    try:
        run_row = store.get_run(summary.run_id)
        assert run_row is not None and run_row.mode == "realtime"
    finally:
        store.close()
    with pytest.raises(BatchesUnsupportedError, match="no Message Batches"):
        await run(inp, config=RunConfig(db=str(tmp_path / "n.db"), mode="native"),
                  provider=Provider.at(local_api.base_url))
