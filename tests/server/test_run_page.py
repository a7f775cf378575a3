"""A finished run's page (``/runs/{id}``) in a real headless Chromium (Debian's): charts
and jobs drawn from the ledger without having been watched, the per-job view, the
re-send of errored jobs, a failed ingest's reason, buttons only where they do something,
and a phone's width. One server and one browser for the module."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from sqlalchemy import update

from laneway.local import LocalConfig, start_local
from laneway.store import RunStatus, Store, open_store
from laneway.store import schema as S
from laneway.store.statuses import JobStatus

from .conftest import CHROMIUM
from .helpers import Served, start_server, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    local = start_local(LocalConfig(token_ms=1, rpm=20_000, batch_min_s=0.2))
    s = start_server(local, tmp_path_factory.mktemp("run-page") / "ledger.db",
                     concurrency=8)
    try:
        yield s
    finally:
        s.stop()
        local.stop(wait=False)


@pytest.fixture(scope="module")
def ledger(served: Served) -> Iterator[Store]:
    """The server's ledger, opened as another process would."""
    store = open_store(served.agent.settings)
    try:
        yield store
    finally:
        store.close()


def finished_run(served: Served, name: str, n: int) -> dict[str, Any]:
    """A run of ``n`` jobs started over the API and waited for (no page open)."""
    body = "".join(json.dumps({"id": f"{name}-{i:03d}", "prompt": f"say {name} {i}"}) + "\n"
                   for i in range(n))
    with served.client() as http:
        if http.get(f"/v1/runs/{name}").status_code == 404:
            assert http.post(f"/v1/runs?name={name}", content=body,
                             headers={"content-type": "application/x-ndjson"}).is_success
        wait_for(lambda: http.get(f"/v1/runs/{name}").json()["status"] == "done",
                 timeout_s=30, what=f"run {name} to finish")
        info: dict[str, Any] = http.get(f"/v1/runs/{name}").json()
    return info


def open_run(page: Any, served: Served, run_id: str) -> None:
    page.goto(f"{served.base_url}/runs/{run_id}")
    page.locator("#detail[data-state='ended']").wait_for(timeout=10_000)
    page.locator("#jobs-table[data-state='ready']").wait_for(timeout=10_000)


def test_a_finished_run_shows_what_happened_without_having_been_watched(
        served: Served, page: Any) -> None:
    info = finished_run(served, "unwatched", 60)
    open_run(page, served, "unwatched")
    assert page.inner_text("#detail-done") == "60 / 60"
    assert page.inner_text("#detail-rate-label") == "rate (mean)"
    rate = float(page.inner_text("#detail-rate").split()[0])
    assert rate > 0  # not "0.0 jobs/s"
    throughput = page.locator("#throughput-chart")
    assert int(throughput.get_attribute("data-bars")) >= 1
    assert int(throughput.get_attribute("data-line-points")) >= 1  # the runner's samples
    assert page.locator("#samples-note").is_hidden()
    assert page.inner_text("#detail-flight").startswith("peak ")  # from the samples
    # The busiest bucket's bar reaches above half the axis (which is rounded up to 1, 2
    # or 5 x 10^n), not squeezed by a style: a third of the chart, padding included.
    tallest = max(box["height"] for box in (
        r.bounding_box() for r in page.locator("#throughput-chart rect.col").all()) if box)
    assert tallest > 0.3 * throughput.bounding_box()["height"]
    usage = page.locator("#usage-chart")
    assert int(usage.get_attribute("data-bars")) >= 1
    assert int(usage.get_attribute("data-line-points")) >= 1
    with served.client() as http:
        timeline = http.get("/v1/runs/unwatched/timeline").json()
    assert sum(b["succeeded"] for b in timeline["buckets"]) == 60
    assert sum(b["output_tokens"] for b in timeline["buckets"]) == info["output_tokens"]
    assert timeline["samples"] is True
    # Buttons only where they do something.
    assert page.get_attribute("#detail-results", "href").endswith("/v1/runs/unwatched/results")
    assert page.is_disabled("#detail-cancel") and page.is_disabled("#detail-resend")
    # The jobs, a page at a time.
    assert page.locator("#jobs-body tr").count() == 50
    assert page.inner_text("#jobs-range") == "#1 – #50"
    assert page.is_disabled("#jobs-prev")
    page.click("#jobs-next")
    page.locator("#jobs-range:text-is('#51 – #60')").wait_for(timeout=5000)
    assert page.locator("#jobs-body tr").count() == 10 and page.is_disabled("#jobs-next")
    page.click("#jobs-prev")
    page.locator("#jobs-range:text-is('#1 – #50')").wait_for(timeout=5000)
    assert page.errors == []


def test_one_job_filters_and_search(served: Served, ledger: Store, page: Any) -> None:
    finished_run(served, "looked", 30)
    with ledger.engine.begin() as conn:
        conn.execute(update(S.jobs).where(S.jobs.c.run_id == "looked",
                                          S.jobs.c.seq.in_([4, 17])).values(
            status=JobStatus.ERRORED, error_type="overloaded_error",
            error_message="Overloaded (simulated)",
            result='{"type":"errored","error":{"type":"overloaded_error"}}'))
    open_run(page, served, "looked")
    page.select_option("#jobs-status", "errored")
    page.locator("#jobs-body tr >> nth=1").wait_for(timeout=5000)
    wait_for(lambda: page.locator("#jobs-body tr").count() == 2, what="the errored jobs")
    assert "overloaded_error: Overloaded (simulated)" in page.inner_text("#jobs-body")
    page.select_option("#jobs-status", "")
    page.fill("#jobs-search", "looked-02")
    page.locator("#jobs-body tr[data-job='looked-029']").wait_for(timeout=5000)
    wait_for(lambda: page.locator("#jobs-body tr").count() == 10, what="the search")
    page.click("#jobs-body tr[data-job='looked-021'] button")
    page.locator("#job[data-job='looked-021']").wait_for(timeout=5000)
    assert page.inner_text("#job-status") == "succeeded"
    assert "say looked 21" in page.inner_text("#job-answer")  # echo answers the prompt
    request = json.loads(page.inner_text("#job-request"))
    assert request["messages"][0]["content"] == "say looked 21"
    assert page.inner_text("#job-attempts") == "1"
    assert re.fullmatch(r"\d+ / \d+", page.inner_text("#job-usage"))
    assert page.inner_text("#job-cost").startswith("$")
    assert page.locator("#job-error").is_hidden()
    page.fill("#jobs-search", "looked-017")
    page.click("#jobs-body tr[data-job='looked-017'] button")
    page.locator("#job[data-job='looked-017']").wait_for(timeout=5000)
    assert page.inner_text("#job-error") == "overloaded_error: Overloaded (simulated)"
    assert page.inner_text("#job-answer") == "(errored)"
    assert page.errors == []


def test_errored_jobs_are_sent_again_from_the_page(served: Served, ledger: Store,
                                                   page: Any) -> None:
    finished_run(served, "again", 12)
    with ledger.engine.begin() as conn:
        conn.execute(update(S.jobs).where(S.jobs.c.run_id == "again",
                                          S.jobs.c.seq.in_([1, 5, 9])).values(
            status=JobStatus.ERRORED, error_type="api_error", error_message="boom"))
        # A run ends with its row written after its jobs (its info at rest is kept
        # until then).
        conn.execute(update(S.runs).where(S.runs.c.id == "again").values(
            updated_at=S.runs.c.updated_at + 1))
    open_run(page, served, "again")
    assert page.inner_text("#detail-errors") == "3"
    assert page.inner_text("#detail-resend") == "Re-send 3 errored/expired"
    page.click("#detail-resend")
    page.locator("#detail-action:text-is('sending 3 jobs again')").wait_for(timeout=5000)
    page.locator("#detail[data-state='ended']").wait_for(timeout=15_000)
    wait_for(lambda: page.inner_text("#detail-errors") == "0", what="the errors to go")
    assert page.inner_text("#detail-done") == "12 / 12"
    assert page.is_disabled("#detail-resend")
    with served.client() as http:  # the timeline kept while the run was at rest is not
        buckets = http.get("/v1/runs/again/timeline").json()["buckets"]
    assert sum(b["errored"] for b in buckets) == 0
    assert sum(b["succeeded"] for b in buckets) == 12
    job = ledger.job_detail("again", "again-005")
    assert job is not None and job["status"] == "succeeded" and job["attempts"] == 2
    assert ledger.get_run("again").status == RunStatus.DONE  # type: ignore[union-attr]
    assert page.errors == []


def test_a_failed_ingest_says_why_and_offers_nothing_it_cannot_do(
        served: Served, ledger: Store, page: Any) -> None:
    ledger.create_run(run_id="broken", fingerprint="fp", options={"model": "m"},
                      mode="auto", provider="local", input_path="/nowhere.jsonl",
                      input_sha256="0" * 64)
    note = "ingest failed at line 4: params.max_tokens: must be an integer"
    ledger.update_run("broken", status=RunStatus.INGEST_FAILED, note=note)
    open_run(page, served, "broken")
    assert page.inner_text("#detail-note") == note
    assert page.get_attribute("#detail-results", "aria-disabled") == "true"
    assert page.get_attribute("#detail-results", "href") is None
    assert page.is_disabled("#detail-resend") and page.is_disabled("#detail-cancel")
    assert not page.locator("#jobs-empty").is_hidden()
    with served.client() as http:
        refused = http.post("/v1/runs/broken/resend")
    assert refused.status_code == 409 and "ingest_failed" in refused.json()["error"]["message"]
    assert page.errors == []


def test_a_gateway_batch_is_never_sent_again(served: Served, page: Any) -> None:
    client = anthropic.Anthropic(base_url=served.base_url, api_key="k", max_retries=0)
    batch = client.messages.batches.create(requests=[
        {"custom_id": f"b{i}", "params": {"model": "claude-haiku-4-5", "max_tokens": 8,
                                          "messages": [{"role": "user", "content": "hi"}]}}
        for i in range(2)])
    wait_for(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended",
             timeout_s=30, what="the batch to end")
    open_run(page, served, batch.id)
    assert page.locator("#detail-resend").is_hidden()
    assert "Message Batch" in page.inner_text("#detail-note")
    with served.client() as http:
        refused = http.post(f"/v1/runs/{batch.id}/resend")
    assert refused.status_code == 409 and "cannot change" in refused.json()["error"]["message"]


def test_the_pages_fit_a_phone(served: Served, browser: Any) -> None:
    finished_run(served, "phone", 5)
    context = browser.new_context(viewport=PHONE)
    try:
        page = context.new_page()
        for path in ("/runs/phone", "/runs", "/traffic", "/"):
            page.goto(served.base_url + path)
            time.sleep(0.3)  # its first data drawn
            if path == "/runs/phone":
                page.locator("#jobs-table[data-state='ready']").wait_for(timeout=10_000)
            width = page.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width} px wide on a phone"
    finally:
        context.close()
