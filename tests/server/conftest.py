"""Fixtures of the server tests: ``laneway serve`` on loopback, backed by the local API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laneway.local import RunningLocal

from .helpers import Served, start_server


@pytest.fixture
def served(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    s = start_server(local_api, tmp_path / "ledger.db")
    try:
        yield s
    finally:
        s.stop()


#: Debian's chromium, for the browser tests (they are skipped without it).
CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (its own context) whose script errors are kept in ``page.errors``."""
    context = browser.new_context()
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.errors = errors
    try:
        yield p
    finally:
        context.close()
