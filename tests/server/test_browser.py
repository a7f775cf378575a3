"""The chat page and the runs dashboard in a real headless Chromium (Debian's)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laneway.local import RunningLocal

from .conftest import CHROMIUM
from .helpers import CountingEngine, Served, start_server, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]


def ask(page: Any, text: str) -> Any:
    page.fill("#input", text)
    page.press("#input", "Enter")
    return page.locator(".msg.assistant").last


@pytest.mark.local_config(token_ms=40)
def test_chat_streams_tokens_then_the_usage_line(served: Served, page: Any) -> None:
    page.goto(served.base_url + "/")
    words = " ".join(f"word{i}" for i in range(12))
    answer = ask(page, words)
    content = answer.locator(".content")
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while answer.get_attribute("data-state") != "done":
        assert time.monotonic() < deadline, "the answer never finished"
        text = content.inner_text()
        if text and (not seen or text != seen[-1]):
            seen.append(text)
        time.sleep(0.01)
    assert len(seen) >= 3  # the text grew in several steps, as tokens arrived
    assert all(words.startswith(s.strip()) for s in seen)
    assert content.inner_text() == words
    assert int(answer.get_attribute("data-deltas")) == 12
    meta = answer.locator(".meta").inner_text()
    assert "ttft" in meta and "tok/s" in meta and "12 out tokens" in meta and "$0.0000" in meta
    # The page keeps the history and sends it with the next turn.
    second = ask(page, "again")
    wait_for(lambda: second.get_attribute("data-state") == "done", what="second answer")
    assert second.locator(".content").inner_text() == "again"
    assert page.locator(".msg").count() == 4
    assert page.errors == []


INJECTION = ('<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2"> '
             '<svg onload="window.__pwned = 3"></svg> <a href="javascript:window.__pwned=4">x</a>'
             ' **bold** and `<b>code</b>`\n\n```\n<iframe src="javascript:1"></iframe>\n```')


def test_model_output_is_never_run_as_html(served: Served, page: Any) -> None:
    page.goto(served.base_url + "/")
    answer = ask(page, INJECTION)  # the echo engine says it back, verbatim
    wait_for(lambda: answer.get_attribute("data-state") == "done", what="the answer")
    page.wait_for_timeout(200)  # time for an onerror/onload to fire, were it there
    assert page.evaluate("window.__pwned") is None
    messages = page.locator("#messages")
    for tag in ("script", "img", "svg", "iframe", "a"):
        assert messages.locator(tag).count() == 0, tag
    text = answer.locator(".content").inner_text()
    assert '<img src=x onerror="window.__pwned = 2">' in text
    assert "<script>window.__pwned = 1</script>" in text
    # The tiny markdown subset still applies, as text.
    assert answer.locator("strong").inner_text() == "bold"
    assert answer.locator("p code").inner_text() == "<b>code</b>"
    assert answer.locator("pre code").inner_text() == '<iframe src="javascript:1"></iframe>'
    assert page.errors == []


@pytest.mark.local_config(token_ms=40)
def test_stop_cancels_the_request_upstream(served: Served, page: Any) -> None:
    engine = CountingEngine(served.local.api.engine)
    served.local.api.engine = engine
    page.goto(served.base_url + "/")
    answer = ask(page, " ".join(f"t{i}" for i in range(100)))
    wait_for(lambda: int(answer.get_attribute("data-deltas") or 0) >= 3, what="deltas")
    page.click("#stop")
    wait_for(lambda: answer.get_attribute("data-state") == "stopped", what="stopped")
    wait_for(lambda: engine.cut == 1, timeout_s=3, what="the upstream request to end")
    assert engine.tokens < 60 and engine.finished == 0
    assert "not kept" in answer.locator(".meta").inner_text()


@pytest.fixture
def served4(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """A server that sends four background requests at a time."""
    s = start_server(local_api, tmp_path / "l4.db", concurrency=4)
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.local_config(token_ms=20, rpm=3000)
def test_dashboard_follows_a_run_to_100_percent(served4: Served, page: Any,
                                                tmp_path: Path) -> None:
    served = served4  # four at a time, ~0.1 s each: the run takes about a second
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("".join(json.dumps({"id": f"d{i}", "prompt": f"job number {i} of many"})
                            + "\n" for i in range(40)))
    page.goto(served.base_url + "/runs")
    page.set_input_files("#file", str(jobs))
    page.fill("#run-name", "dash")
    page.click("#start")
    page.wait_for_url("**/runs/dash")  # the upload opens the run's page
    detail = page.locator("#detail")
    # (Waits use selectors: the page's CSP rightly forbids the eval a JS predicate needs.)
    page.locator("#detail[data-state='live'], #detail[data-state='ended']").wait_for(
        timeout=10_000)
    percents = set()
    deadline = time.monotonic() + 20
    while detail.get_attribute("data-state") != "ended":
        assert time.monotonic() < deadline, "the dashboard never saw the run end"
        percents.add(page.inner_text("#detail-percent"))
        time.sleep(0.02)
    assert page.inner_text("#detail-percent") == "100%"
    assert page.inner_text("#detail-done") == "40 / 40"
    assert page.inner_text("#detail-errors") == "0"
    assert "%" in page.inner_text("#detail-limit")  # the limits were learnt from headers
    assert len(percents) >= 2  # it moved while we watched
    assert page.inner_text("#detail-status").startswith("done")
    # The charts were drawn from the ledger: bars of jobs finished, the limits' use.
    chart = page.locator("#throughput-chart")
    assert int(chart.get_attribute("data-bars")) >= 1
    assert int(chart.get_attribute("data-line-points")) >= 1
    assert page.locator("#throughput-chart rect.col.ok").count() >= 1
    page.click("a[data-nav][href^='/runs']")
    row = page.locator("#runs-body tr[data-run='dash']")
    row.wait_for(timeout=5000)
    assert "done" in row.inner_text() and "40 / 40" in row.inner_text()
    assert page.errors == []


@pytest.mark.local_config(token_ms=5)
def test_pages_work_with_a_token(local_api: RunningLocal, tmp_path: Path, page: Any) -> None:
    served = start_server(local_api, tmp_path / "l.db", token="tok-123")
    try:
        denied = page.goto(served.base_url + "/")
        assert denied is not None and denied.status == 401
        page.goto(served.base_url + "/?token=tok-123")
        answer = ask(page, "with a token")
        wait_for(lambda: answer.get_attribute("data-state") == "done", what="the answer")
        assert answer.locator(".content").inner_text() == "with a token"
        page.click("a[href^='/runs']")  # the link keeps the token
        page.wait_for_url("**/runs?token=tok-123")
        jobs = tmp_path / "j.jsonl"
        jobs.write_text('{"id": "a", "prompt": "one"}\n{"id": "b", "prompt": "two"}\n')
        page.set_input_files("#file", str(jobs))
        page.click("#start")
        page.locator("#detail[data-state='ended']").wait_for(timeout=10_000)
        assert page.inner_text("#detail-percent") == "100%"
        assert page.errors == []
    finally:
        served.stop()


@pytest.mark.local_config(token_ms=2)
def test_traffic_page_follows_the_gateway(served: Served, page: Any) -> None:
    """The Traffic page polls the gateway's traffic: a request sent with the SDK shows up
    in the per-key table and as a bar of the chart, lane by lane."""
    import anthropic

    console: list[str] = []
    page.on("console", lambda msg: console.append(msg.text))
    page.goto(served.base_url + "/traffic")
    page.locator("#traffic[data-state='live']").wait_for(timeout=10_000)
    assert page.locator("#keys-body tr").count() == 0
    assert not page.locator("#keys-empty").is_hidden()
    assert page.locator("#traffic-chart rect.req").count() == 0
    assert page.inner_text("#queue-background-waiting") == "0"
    client = anthropic.Anthropic(base_url=served.base_url, api_key="k", max_retries=0)
    model = "claude-haiku-4-5"
    usage = [client.messages.create(model=model, max_tokens=8, messages=[
        {"role": "user", "content": f"background request {i}"}]).usage for i in range(3)]
    row = page.locator("#keys-body tr[data-lane='background']")
    row.wait_for(timeout=10_000)
    page.locator("#keys-body tr[data-lane='background'] td.requests:text-is('3')").wait_for(
        timeout=10_000)
    assert row.get_attribute("data-key") == "local"
    assert row.get_attribute("data-model") == model
    sent_in = sum(u.input_tokens for u in usage)
    sent_out = sum(u.output_tokens for u in usage)
    assert row.locator("td.tokens").inner_text() == f"{sent_in} / {sent_out}"
    assert row.locator("td.errors").inner_text() == "0"
    assert page.locator("#keys-empty").is_hidden()
    chart = page.locator("#traffic-chart")
    page.locator("#traffic-chart[data-requests='3']").wait_for(timeout=10_000)
    assert page.locator("#traffic-chart rect.req.background").count() >= 1
    # Then a stream: the interactive lane gets its row and its bar.
    with client.messages.stream(model=model, max_tokens=8, messages=[
            {"role": "user", "content": "a person waiting"}]) as stream:
        stream.get_final_message()
    page.locator("#keys-body tr[data-lane='interactive']").wait_for(timeout=10_000)
    page.locator("#traffic-chart[data-requests='4']").wait_for(timeout=10_000)
    assert page.locator("#traffic-chart rect.req.interactive").count() == 1
    assert int(chart.get_attribute("data-buckets")) >= 1
    assert page.locator("#keys-body tr").count() == 2
    assert page.errors == [] and [m for m in console if "Content Security" in m] == []
