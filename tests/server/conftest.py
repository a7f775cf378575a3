"""Fixtures of the server tests: ``laneway serve`` on loopback, backed by the local API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
