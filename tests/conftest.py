"""Fixtures shared by the whole suite: the local API on a loopback port, SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local


@pytest.fixture
def local_api(request: pytest.FixtureRequest) -> Iterator[RunningLocal]:
    """The local API with the echo engine; parametrize with a LocalConfig via indirect=True
    or mark a test ``@pytest.mark.local_config(rpm=..., ...)``."""
    marker = request.node.get_closest_marker("local_config")
    config = getattr(request, "param", None) or LocalConfig(**(marker.kwargs if marker else {}))
    running = start_local(config)
    try:
        yield running
    finally:
        # Each server has its own port: the next test need not wait for an echo server to
        # finish its graceful shutdown (a model engine is waited for: it frees memory).
        running.stop(wait=config.engine != "echo")


@pytest.fixture
async def client(local_api: RunningLocal) -> AsyncIterator[anthropic.AsyncAnthropic]:
    """An official SDK client pointed at the local API, with the SDK's retries off."""
    async with anthropic.AsyncAnthropic(
        base_url=local_api.base_url, api_key="test-key", max_retries=0
    ) as c:
        yield c
