"""``usage`` as today's API sends it: the full ``Usage`` on a message (``cache_creation``,
``service_tier``), and cumulative input counts in ``message_delta``."""

from __future__ import annotations

import anthropic
from anthropic.types import MessageDeltaUsage, Usage

from .helpers import MODEL, PROMPT, PROMPT_TOKENS, raw_sse, user, wait_ended

ZERO_CACHE = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


async def test_message_delta_carries_cumulative_input_usage(
    client: anthropic.AsyncAnthropic,
) -> None:
    counted = await client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    events, _ = await raw_sse(client, max_tokens=100, messages=user(PROMPT))
    delta = next(data for name, data in events if name == "message_delta")

    assert delta["usage"] == {
        "input_tokens": counted.input_tokens, "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0, "output_tokens": PROMPT_TOKENS,
    }
    parsed = MessageDeltaUsage.model_validate(delta["usage"])  # the SDK's own type
    assert parsed.input_tokens == counted.input_tokens


async def test_a_client_reading_usage_only_from_message_delta_sees_input_tokens(
    client: anthropic.AsyncAnthropic,
) -> None:
    """What LangChain does: input usage taken from ``message_delta`` alone."""
    seen: list[MessageDeltaUsage] = []
    stream = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT), stream=True)
    async for event in stream:
        if event.type == "message_delta":
            seen.append(event.usage)
    assert len(seen) == 1
    assert seen[0].input_tokens is not None and seen[0].input_tokens > 0
    assert seen[0].cache_read_input_tokens == seen[0].cache_creation_input_tokens == 0


async def test_usage_has_cache_creation_and_service_tier(
    client: anthropic.AsyncAnthropic,
) -> None:
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT))
    body = raw.http_response.json()
    assert body["usage"]["cache_creation"] == ZERO_CACHE
    assert body["usage"]["service_tier"] == "standard"
    Usage.model_validate(body["usage"])  # every field the SDK's type knows is well formed

    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=user(PROMPT)
    ) as stream:
        final = await stream.get_final_message()
    assert final.usage.service_tier == "standard"
    assert final.usage.cache_creation is not None
    assert final.usage.cache_creation.model_dump() == ZERO_CACHE


async def test_batch_results_are_in_the_batch_tier(client: anthropic.AsyncAnthropic) -> None:
    batch = await client.messages.batches.create(requests=[
        {"custom_id": "a", "params": {"model": MODEL, "max_tokens": 100,
                                      "messages": user(PROMPT)}},
    ])
    await wait_ended(client, batch.id)
    results = [r async for r in await client.messages.batches.results(batch.id)]
    assert results[0].result.type == "succeeded"
    usage = results[0].result.message.usage
    assert usage.service_tier == "batch"
    assert usage.cache_creation is not None
    assert usage.cache_creation.model_dump() == ZERO_CACHE
