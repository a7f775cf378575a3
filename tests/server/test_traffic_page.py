"""The Traffic page's history in a real headless Chromium (Debian's): read from the
ledger, so it survives a restart of the server, with the spend per key and per model
(Message Batches included), and a layout that fits a phone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local

from .conftest import CHROMIUM
from .helpers import start_server, wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]

MODEL = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def local() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(token_ms=1, batch_min_s=0.2))
    try:
        yield running
    finally:
        running.stop(wait=False)


def ask(client: anthropic.Anthropic, text: str) -> None:
    client.messages.create(model=MODEL, max_tokens=8,
                           messages=[{"role": "user", "content": text}])


def test_the_history_survives_a_restart_and_fits_a_phone(
        local: RunningLocal, tmp_path: Path, browser: Any,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWAY_BATCH_POLL_S", "0.05,0.2")
    db = tmp_path / "ledger.db"
    first = start_server(local, db)
    try:
        _, secret = first.agent.store.create_key("alice")
        alice = anthropic.Anthropic(base_url=first.base_url, api_key=secret, max_retries=0)
        ask(alice, "one")
        ask(alice, "two")
        anonymous = anthropic.Anthropic(base_url=first.base_url, api_key="k", max_retries=0)
        with anonymous.messages.stream(model=MODEL, max_tokens=8, messages=[
                {"role": "user", "content": "a person waiting"}]) as stream:
            stream.get_final_message()
        batch = alice.messages.batches.create(requests=[
            {"custom_id": f"b{i}", "params": {"model": MODEL, "max_tokens": 8,
                                              "messages": [{"role": "user", "content": "hi"}]}}
            for i in range(3)])
        wait_for(lambda: alice.messages.batches.retrieve(batch.id).processing_status
                 == "ended", timeout_s=30, what="the batch to end")
    finally:
        first.stop()  # the traffic in memory is gone; the ledger keeps it
    second = start_server(local, db)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(second.base_url + "/traffic")
        page.locator("#history[data-state='ready']").wait_for(timeout=10_000)
        rows = {(r.get_attribute("data-key"), r.get_attribute("data-lane")):
                r.locator("td.requests").inner_text()
                for r in page.locator("#keys-body tr").all()}
        assert rows == {("alice", "background"): "2", ("alice", "batch"): "3",
                        ("local", "interactive"): "1"}
        by_key = page.locator("#spend-keys-body tr[data-name='alice']")
        assert by_key.locator("td.requests").inner_text() == "5"
        assert by_key.locator("td.batch-requests").inner_text() == "3"
        assert by_key.locator("td.cost").inner_text().startswith("$")
        by_model = page.locator(f"#spend-models-body tr[data-name='{MODEL}']")
        assert by_model.locator("td.requests").inner_text() == "6"
        assert int(page.get_attribute("#history-chart", "data-bars") or 0) >= 1
        assert page.locator("#traffic-chart rect.req").count() == 0  # this process: none
        # Each cell of a card is a line of its own (no style squeezes one).
        for cell in page.locator("#keys-body tr >> nth=0").locator("td").all():
            assert cell.bounding_box()["height"] >= 12, cell.inner_text()
        # Nothing wider than the phone, with the tables full.
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 390, f"/traffic is {width} px wide on a phone"
        page.click("[data-window='week']")
        page.locator("#history[data-window='week'][data-state='ready']").wait_for(
            timeout=10_000)
        assert page.locator("#keys-body tr").count() == 3
        assert errors == []
    finally:
        context.close()
        second.stop()
