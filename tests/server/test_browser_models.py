"""In headless Chromium: the pages name the model that answered (issue 25, goal 1), and
load with no failed request (the favicon included)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from laneway.local import LocalConfig, start_local
from laneway.local.engines.echo import EchoEngine

from .helpers import Served, start_server

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium"),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
BOTH = re.compile(r"asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, \$0; "
                  r"on claude-haiku-4-5 this would cost \$0\.\d+")


class Named(EchoEngine):
    model_id = "smollm2-135m-instruct"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = start_local(LocalConfig(), engine=Named())
    s = start_server(running, tmp_path / "l.db", kind="anthropic")
    try:
        yield s
    finally:
        s.stop()
        running.stop()


@pytest.fixture
def page() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        p = browser.new_page()
        failed: list[str] = []
        p.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400
             else None)
        p.failed = failed
        try:
            yield p
        finally:
            browser.close()


def test_pages_name_the_model_that_answered(served: Served, page: Any, tmp_path: Path) -> None:
    page.goto(served.base_url + "/")
    page.fill("#input", "hello from the page")
    page.press("#input", "Enter")
    answer = page.locator(".msg.assistant").last
    page.locator(".msg.assistant[data-state='done']").wait_for(timeout=10_000)
    meta = answer.locator(".meta").inner_text()
    assert "smollm2-135m-instruct" in meta and BOTH.search(meta), meta

    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text('{"id": "a", "prompt": "one job"}\n')
    page.goto(served.base_url + "/runs")
    page.set_input_files("#file", str(jobs))
    page.fill("#run-name", "named")
    page.click("#start")
    page.locator("#detail[data-state='ended']").wait_for(timeout=10_000)
    assert BOTH.search(page.inner_text("#detail-model")), page.inner_text("#detail-model")
    page.goto(served.base_url + "/runs")  # the upload opened the run's page
    row = page.locator("#runs-body tr[data-run='named'] td.model")
    row.wait_for(timeout=5000)
    assert BOTH.search(row.inner_text())

    sdk = anthropic.Anthropic(base_url=served.base_url, api_key="k", max_retries=0)
    sdk.messages.create(model="claude-haiku-4-5", max_tokens=8,
                        messages=[{"role": "user", "content": "through the gateway"}])
    page.goto(served.base_url + "/traffic")
    cell = page.locator("#keys-body tr[data-lane='background'] td.answered")
    cell.wait_for(timeout=10_000)
    assert re.fullmatch(r"smollm2-135m-instruct \(on claude-haiku-4-5: \$0\.\d{6}\)",
                        cell.inner_text()), cell.inner_text()
    assert page.failed == []  # no favicon 404, nothing else failing
