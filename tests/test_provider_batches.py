"""The provider's Message Batches, through the official SDK against the local API: what
the SDK raises arrives as laneway's errors, mapped in one place (``sdk_errors``)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from laneway.errors import ConnectionLostError, RequestError
from laneway.local import RunningLocal
from laneway.local.server import free_port
from laneway.provider.batches import Batches
from laneway.provider.client import TRANSPORT_ERRORS, Provider, sdk_errors


async def test_batches_round_trip_and_errors_are_laneways(local_api: RunningLocal) -> None:
    provider = Provider.at(local_api.base_url)
    batches = Batches(provider)
    try:
        request = (b'{"custom_id":"j0_bx","params":{"model":"claude-sonnet-4-6",'
                   b'"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}}')
        info = await batches.create(b'{"requests":[' + request + b"]}")
        assert info.total == 1 and info.id.startswith("msgbatch_")
        assert [b.id for b in await batches.recent(since=info.created_at - 1)] == [info.id]
        with pytest.raises(RequestError) as err:
            await batches.retrieve("msgbatch_nope")
        assert err.value.status == 404
    finally:
        await provider.aclose()
    unreachable = Provider.at(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ConnectionLostError):
            await Batches(unreachable, timeout_s=5).cancel("msgbatch_x")
    finally:
        await unreachable.aclose()


def test_sdk_errors_lets_cancellation_through() -> None:
    with pytest.raises(asyncio.CancelledError), sdk_errors():
        raise asyncio.CancelledError
    with pytest.raises(KeyboardInterrupt), sdk_errors():
        raise KeyboardInterrupt
    transport = TRANSPORT_ERRORS[0]  # the SDK's own transport (httpx2 or httpx)
    with pytest.raises(ConnectionLostError), sdk_errors():
        raise sys.modules[transport.__module__.split(".")[0]].ConnectError("refused")
