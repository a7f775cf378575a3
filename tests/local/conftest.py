"""Fixtures of the local API tests beyond the suite's (``local_api``, ``client``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local

from .helpers import RecordingEngine


@pytest.fixture
def recording() -> Iterator[tuple[RunningLocal, RecordingEngine]]:
    """The local API over a :class:`RecordingEngine`, and that engine."""
    engine = RecordingEngine()
    running = start_local(LocalConfig(), engine=engine)
    try:
        yield running, engine
    finally:
        running.stop(wait=False)


@pytest.fixture
async def recording_client(
    recording: tuple[RunningLocal, RecordingEngine],
) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """An official SDK client of the ``recording`` server."""
    async with anthropic.AsyncAnthropic(
        base_url=recording[0].base_url, api_key="k", max_retries=0
    ) as c:
        yield c
