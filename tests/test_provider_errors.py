"""What the installed SDK raises for a dropped or stalled answer becomes the same laneway
error whatever the SDK version (2.17 wraps errors met while reading a body as
``APIConnectionError``/``APITimeoutError``; earlier 2.x let httpx2's own through), and
the runners' policy still treats it as before: a drop or a timeout is an error with no
answer (it uses no attempt, the lane waits for the API) and is worth another try.

Both of the SDK's transports are tried: aiohttp (laneway's default) and httpx2."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import pytest

from laneway.errors import (
    ConnectionLostError,
    ProviderError,
    ProviderTimeoutError,
    RetryableError,
    StalledError,
)
from laneway.local import RunningLocal
from laneway.provider import relay as provider_relay
from laneway.provider.client import Provider
from laneway.runners.api_wait import no_answer
from laneway.runners.retry import RetryPolicy

PARAMS = {"model": "claude-haiku-4-5", "max_tokens": 50,
          "messages": [{"role": "user", "content": "The quick brown fox jumps"}]}
TRANSPORTS = ["aiohttp", "httpx"]


@pytest.fixture(params=TRANSPORTS)
async def provider(
    request: pytest.FixtureRequest, local_api: RunningLocal, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Provider]:
    monkeypatch.setenv("LANEWAY_HTTP", request.param)
    p = Provider.at(local_api.base_url)
    try:
        yield p
    finally:
        await p.aclose()


def assert_retried_as_no_answer(err: ProviderError) -> None:
    assert isinstance(err, RetryableError)
    assert no_answer(err)
    assert RetryPolicy().should_retry(err, attempts=1, rate_limited=0)


def test_the_installed_sdk_is_the_one_laneway_maps() -> None:
    # The mapping below relies on this order of the SDK's classes (checked, not assumed).
    assert issubclass(anthropic.APITimeoutError, anthropic.APIConnectionError)


@pytest.mark.local_config(faults="drop=1.0")
async def test_a_dropped_stream_is_a_lost_connection(provider: Provider) -> None:
    with pytest.raises(ConnectionLostError) as info:
        await provider.stream(dict(PARAMS), timeout_s=30, idle_timeout_s=30)
    assert_retried_as_no_answer(info.value)


@pytest.mark.local_config(faults="drop=1.0")
async def test_a_dropped_answer_is_a_lost_connection(provider: Provider) -> None:
    with pytest.raises(ConnectionLostError) as info:
        await provider.create(dict(PARAMS), timeout_s=30)
    assert_retried_as_no_answer(info.value)


@pytest.mark.local_config(faults="stall=1.0", stall_s=5.0)
async def test_a_stream_stalled_past_the_read_timeout_times_out(provider: Provider) -> None:
    # Pings come each second: a 0.4 s read timeout fires between them.
    with pytest.raises(ProviderTimeoutError) as info:
        await provider.stream(dict(PARAMS), timeout_s=0.4, idle_timeout_s=30)
    assert_retried_as_no_answer(info.value)


@pytest.mark.local_config(faults="stall=1.0", stall_s=5.0)
async def test_a_stream_sending_only_pings_is_cut_as_stalled(provider: Provider) -> None:
    with pytest.raises(StalledError) as info:
        await provider.stream(dict(PARAMS), timeout_s=30, idle_timeout_s=1.5)
    assert_retried_as_no_answer(info.value)


@pytest.mark.local_config(faults="drop=1.0")
async def test_the_gateways_relay_maps_a_dropped_body(provider: Provider) -> None:
    response = await provider_relay.send(
        provider, "POST", "/v1/messages", content=json.dumps(PARAMS).encode(),
        headers={"content-type": "application/json"},
        timeout_s=30)
    assert response.status_code == 200
    with pytest.raises(ConnectionLostError) as info:
        await provider_relay.read(response)
    assert_retried_as_no_answer(info.value)


@pytest.mark.local_config(faults="stall=1.0", stall_s=5.0)
async def test_the_gateways_relay_maps_a_stalled_body(provider: Provider) -> None:
    body = json.dumps({**PARAMS, "stream": True}).encode()
    response = await provider_relay.send(
        provider, "POST", "/v1/messages", content=body,
        headers={"content-type": "application/json"},
        timeout_s=0.4)
    with pytest.raises(ProviderTimeoutError) as info:
        await provider_relay.read(response)
    assert_retried_as_no_answer(info.value)
