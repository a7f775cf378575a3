"""``GET /v1/models``: ``client.models.list()`` and ``retrieve()`` through the official SDK,
every entry valid as the SDK's ``ModelInfo``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import ModelInfo

from laneway.cost.prices import PRICES
from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import EchoEngine

from .helpers import MODEL


def _validated(raw: httpx2.Response) -> list[ModelInfo]:
    """Every entry of a raw listing, validated strictly (the SDK itself only constructs)."""
    return [ModelInfo.model_validate(entry) for entry in raw.json()["data"]]


async def test_list_has_the_engine_and_every_priced_claude_model(
    client: anthropic.AsyncAnthropic,
) -> None:
    raw = await client.models.with_raw_response.list(limit=1000)
    entries = _validated(raw.http_response)
    ids = [m.id for m in entries]
    assert set(ids) == {"echo", *PRICES}
    assert len(ids) == len(set(ids))
    # Newest first, as the API lists them.
    dates = [m.created_at for m in entries]
    assert dates == sorted(dates, reverse=True)
    by_id = {m.id: m for m in entries}
    assert by_id["claude-opus-4-8"].display_name == "Claude Opus 4.8"
    assert by_id["claude-sonnet-5"].display_name == "Claude Sonnet 5"
    assert by_id["claude-haiku-4-5"].created_at == datetime(2025, 10, 15, tzinfo=UTC)
    assert by_id["claude-opus-5"].created_at == datetime(2026, 7, 24, tzinfo=UTC)
    assert by_id["claude-opus-5"].line == "opus"
    for model in entries:
        assert model.type == "model" and model.lifecycle == "active"
        assert model.capabilities is not None
        # The local engines do not think: said here, and a thinking request is ignored.
        assert model.capabilities.thinking.supported is False
        assert model.capabilities.batch.supported is True


async def test_the_sdk_pages_through_the_list(client: anthropic.AsyncAnthropic) -> None:
    first = await client.models.list(limit=3)
    assert len(first.data) == 3 and first.has_more is True
    assert (first.first_id, first.last_id) == (first.data[0].id, first.data[-1].id)
    everything = [m.id async for m in await client.models.list(limit=3)]  # auto-paging
    assert len(everything) == len(PRICES) + 1
    assert everything[:3] == [m.id for m in first.data]
    second = await client.models.list(limit=3, after_id=first.data[-1].id)
    assert [m.id for m in second.data] == everything[3:6]
    back = await client.models.list(limit=2, before_id=second.data[0].id)
    assert [m.id for m in back.data] == everything[1:3] and back.has_more is True
    last = await client.models.list(limit=1000, after_id=everything[-2])
    assert [m.id for m in last.data] == everything[-1:] and last.has_more is False


async def test_lifecycle_filter(client: anthropic.AsyncAnthropic) -> None:
    active = await client.models.list(lifecycle=["active"], limit=1000)
    assert len(active.data) == len(PRICES) + 1
    retired = await client.models.list(lifecycle=["retired"])
    assert retired.data == [] and retired.has_more is False
    assert (retired.first_id, retired.last_id) == (None, None)


async def test_retrieve_and_unknown_model(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.models.with_raw_response.retrieve(MODEL)
    model = ModelInfo.model_validate(raw.http_response.json())
    assert (model.id, model.display_name) == (MODEL, "Claude Sonnet 5")
    assert (await client.models.retrieve("echo")).id == "echo"
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.models.retrieve("claude-nonexistent-9")
    assert info.value.status_code == 404
    body = info.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "not_found_error"
    assert "claude-nonexistent-9" in body["error"]["message"]


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"after_id": "nope"}])
async def test_bad_paging_is_a_bad_request(
    client: anthropic.AsyncAnthropic, params: dict[str, Any]
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.models.list(**params)
    assert (info.value.api_message or "").split(":")[0] in params


class _DescribedEngine(EchoEngine):
    """An engine that describes itself (what a model engine does through ``describe``)."""

    name = "tiny-model"

    def describe(self) -> dict[str, Any]:
        return {"display_name": "Tiny Model", "created_at": "2024-11-01T00:00:00Z",
                "max_input_tokens": 8192, "max_tokens": 4096,
                "capabilities": {"structured_outputs": {"supported": True}}}


@pytest.fixture
def described() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(), engine=_DescribedEngine())
    try:
        yield running
    finally:
        running.stop(wait=False)


async def test_an_engine_describes_its_entries(described: RunningLocal) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=described.base_url, api_key="k", max_retries=0
    ) as client:
        raw = await client.models.with_raw_response.list(limit=1000)
    by_id = {m.id: m for m in _validated(raw.http_response)}
    own = by_id["tiny-model"]
    assert own.display_name == "Tiny Model"
    assert own.created_at == datetime(2024, 11, 1, tzinfo=UTC)
    # The Claude ids are served by the same engine: its limits and capabilities, their names.
    for model in (own, by_id[MODEL]):
        assert (model.max_input_tokens, model.max_tokens) == (8192, 4096)
        assert model.capabilities is not None
        assert model.capabilities.structured_outputs.supported is True
        assert model.capabilities.thinking.supported is False
    assert by_id[MODEL].display_name == "Claude Sonnet 5"
