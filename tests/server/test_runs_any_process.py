"""The runs API from any process: two ``laneway serve`` apps on one ledger (as
``--workers 2`` runs them) read, follow and cancel each other's runs, since a run's
state is the ledger's, not one process's memory."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from laneway.local import RunningLocal
from laneway.store import open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

from .helpers import parse_sse, start_server, wait_for
from .test_runs_api import NDJSON, jsonl


@pytest.mark.local_config(token_ms=20)
def test_a_run_started_on_one_process_is_read_and_canceled_on_another(
        local_api: RunningLocal, tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    a = start_server(local_api, db, concurrency=2)
    b = start_server(local_api, db)
    try:
        with a.client() as ha, b.client() as hb:
            made = ha.post("/v1/runs?name=shared", content=jsonl(60, words=8),
                           headers=NDJSON)
            assert made.status_code == 201, made.text
            run_id = made.json()["id"]
            wait_for(lambda: hb.get(f"/v1/runs/{run_id}").json()["done"] > 0,
                     what="b to see a's progress")
            seen = hb.get(f"/v1/runs/{run_id}").json()
            assert seen["status"] == "running" and not seen["live"]  # a runs it
            assert run_id in [r["id"] for r in hb.get("/v1/runs").json()["data"]]
            with hb.stream("GET", f"/v1/runs/{run_id}/events") as r:
                lines = r.iter_lines()
                for line in lines:  # b follows a's run from the ledger
                    if line.startswith("data:"):
                        break
                canceled = hb.post(f"/v1/runs/{run_id}/cancel")
                assert canceled.status_code == 200, canceled.text
                rest = parse_sse(list(lines))
            assert rest[-1][0] == "end" and rest[-1][1]["status"] == "canceled"
            # a sees the cancel in the ledger and cancels what it holds, unsent.
            wait_for(lambda: not a.agent.is_live(run_id), what="a to stop the run")
            for http in (ha, hb):
                info = http.get(f"/v1/runs/{run_id}").json()
                assert info["status"] == "canceled" and info["pending"] == 0, info
            results = [json.loads(x) for x in
                       hb.get(f"/v1/runs/{run_id}/results").text.splitlines()]
        ids = Counter(r["custom_id"] for r in results)
        assert len(ids) == 60 and set(ids.values()) == {1}
        assert {r["result"]["type"] for r in results} <= {"succeeded", "canceled"}
        store = open_store(str(db))
        try:
            with store.engine.connect() as conn:
                held = conn.scalar(select(func.count()).where(
                    S.jobs.c.run_id == run_id, S.jobs.c.status == JobStatus.CLAIMED))
            assert held == 0
        finally:
            store.close()
    finally:
        a.stop()
        b.stop()
