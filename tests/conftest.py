"""Fixtures shared by the whole suite: the local API on a loopback port, SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import pytest

import pgserver
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for pytest-xdist (``--dist loadgroup``, as scripts/test runs the suite): the
    tests marked ``timing`` run one after another on one worker, so no two of them
    measure time while the other loads the CPU; the ``model`` tests share one worker, so
    the weights are loaded once a module rather than once a worker."""
    for item in items:
        for group in ("timing", "model"):
            if item.get_closest_marker(group) is not None:
                item.add_marker(pytest.mark.xdist_group(group))
                break


@pytest.fixture(scope="session")
def pg_server() -> str:
    """A PostgreSQL server's DSN (``$LANEWAY_TEST_PG`` or a private one, see
    ``pgserver``); the test is skipped, saying why, when there is none."""
    try:
        dsn = pgserver.find_postgres()
        pgserver.wait_ready(dsn)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    return dsn


@pytest.fixture
def pg(pg_server: str) -> Iterator[str]:
    """A DSN with an empty ledger of its own (a fresh schema)."""
    name, dsn = pgserver.new_schema(pg_server)
    yield dsn
    pgserver.drop_schema(pg_server, name)
