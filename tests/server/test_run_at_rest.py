"""A run whose ingest failed (by ``laneway run`` on the same ledger) is at rest: its
event stream ends instead of waiting for progress that never comes."""

from __future__ import annotations

import httpx

from laneway.jobs.formats import Job
from laneway.store.statuses import RunStatus

from .helpers import Served, parse_sse


def test_events_of_a_run_whose_ingest_failed_end(served: Served) -> None:
    store = served.agent.store
    store.create_run(run_id="broken", fingerprint="f", options={}, mode="realtime",
                     provider="local", input_path="in.jsonl", input_sha256=None)
    params = {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    store.add_jobs("broken", [Job(f"j{i}", params, i + 1) for i in range(3)], first_seq=0,
                   last_line=3)
    store.update_run("broken", status=RunStatus.INGEST_FAILED, note="line 4: bad")
    with served.client() as http, http.stream(
            "GET", "/v1/runs/broken/events", timeout=httpx.Timeout(10)) as r:
        events = parse_sse(list(r.iter_lines()))
    assert events[-1][0] == "end" and events[-1][1]["status"] == "ingest_failed"
    assert events[-1][1]["in_flight"] == 0
