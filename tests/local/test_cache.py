"""Prompt caching, simulated: ``cache_control`` prefixes are written the first time and
read when they come again within their lifetime, in ``usage`` (plain, streamed, batched)
and in the rate limits (cache reads do not count toward input tokens per minute)."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, MessageParam, TextBlockParam, Usage

from .helpers import MODEL, PROMPT, raw_sse, text_of, user, wait_ended

LONG = " ".join(f"rule{i}" for i in range(60)) + "."


def cached_system(ttl: str | None = None) -> list[TextBlockParam]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl is not None:
        control["ttl"] = ttl
    return [{"type": "text", "text": LONG, "cache_control": control}]  # type: ignore[typeddict-item]


def split(usage: Usage) -> tuple[int, int, int]:
    """(plain input, cache writes, cache reads)."""
    return (usage.input_tokens, usage.cache_creation_input_tokens or 0,
            usage.cache_read_input_tokens or 0)


async def total_input(client: anthropic.AsyncAnthropic, **params: Any) -> int:
    counted = await client.messages.count_tokens(model=MODEL, **params)
    return counted.input_tokens


async def test_a_cached_system_prompt_is_written_then_read(
    client: anthropic.AsyncAnthropic,
) -> None:
    params: dict[str, Any] = {"system": cached_system(), "messages": user(PROMPT)}
    total = await total_input(client, **params)
    first = await client.messages.create(model=MODEL, max_tokens=100, **params)
    plain, written, read = split(first.usage)
    assert read == 0 and written > plain > 0
    assert plain + written == total
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == written
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0

    second = await client.messages.create(model=MODEL, max_tokens=100, **params)
    assert split(second.usage) == (plain, 0, written)
    assert text_of(second) == text_of(first) == PROMPT

    # Another question after the same system prompt reads it too; another model does not.
    other = await client.messages.create(model=MODEL, max_tokens=100, system=cached_system(),
                                         messages=user("Something else entirely."))
    assert split(other.usage)[1:] == (0, written)
    elsewhere = await client.messages.create(model="claude-haiku-4-5", max_tokens=100, **params)
    assert split(elsewhere.usage) == (plain, written, 0)


async def test_a_changed_prefix_misses(client: anthropic.AsyncAnthropic) -> None:
    await client.messages.create(model=MODEL, max_tokens=5, system=cached_system(),
                                 messages=user(PROMPT))
    changed = cached_system()
    changed[0]["text"] = LONG.replace("rule7", "RULE7")
    again = await client.messages.create(model=MODEL, max_tokens=5, system=changed,
                                         messages=user(PROMPT))
    _, written, read = split(again.usage)
    assert written > 0 and read == 0


async def test_a_growing_conversation_reads_its_last_prefix(
    client: anthropic.AsyncAnthropic,
) -> None:
    """Claude Code's pattern: a marker on the newest user turn, every turn."""
    def turn(text: str) -> MessageParam:
        return {"role": "user", "content": [
            {"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}

    first_messages = [turn(LONG)]
    first = await client.messages.create(model=MODEL, max_tokens=100, messages=first_messages)
    plain, written, _ = split(first.usage)
    assert plain == 0  # everything is before the marker

    # The next turn: the old marker moved, the old prefix stays cached.
    old_prefix: list[MessageParam] = [{"role": "user", "content": [
        {"type": "text", "text": LONG, "cache_control": {"type": "ephemeral"}}]}]
    messages: list[MessageParam] = [
        *old_prefix, {"role": "assistant", "content": text_of(first)}, turn(PROMPT)]
    total = await total_input(client, messages=messages)
    second = await client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    plain2, written2, read2 = split(second.usage)
    assert read2 == written and written2 > 0 and plain2 == 0
    assert read2 + written2 == total


@pytest.mark.local_config(cache_time_scale=1 / 1000)  # 5 min is 0.3 s, 1 h is 3.6 s
async def test_one_hour_entries_outlive_five_minute_ones(
    client: anthropic.AsyncAnthropic,
) -> None:
    params: dict[str, Any] = {"messages": user(PROMPT)}
    five = await client.messages.create(model=MODEL, max_tokens=5,
                                        system=cached_system("5m"), **params)
    hour = await client.messages.create(model="claude-opus-5", max_tokens=5,
                                        system=cached_system("1h"), **params)
    assert hour.usage.cache_creation is not None
    assert hour.usage.cache_creation.ephemeral_1h_input_tokens == split(hour.usage)[1] > 0
    assert hour.usage.cache_creation.ephemeral_5m_input_tokens == 0
    await asyncio.sleep(0.6)
    five_again = await client.messages.create(model=MODEL, max_tokens=5,
                                              system=cached_system("5m"), **params)
    hour_again = await client.messages.create(model="claude-opus-5", max_tokens=5,
                                              system=cached_system("1h"), **params)
    assert split(five_again.usage) == split(five.usage)  # expired: written again
    assert split(hour_again.usage)[1:] == (0, split(hour.usage)[1])


async def test_streamed_usage_carries_the_cache_counts(
    client: anthropic.AsyncAnthropic,
) -> None:
    params: dict[str, Any] = {"max_tokens": 100, "system": cached_system(),
                              "messages": user(PROMPT)}
    await client.messages.create(model=MODEL, **params)
    events, _ = await raw_sse(client, **params)
    start = events[0][1]["message"]["usage"]
    delta = next(data for name, data in events if name == "message_delta")["usage"]
    assert start["cache_read_input_tokens"] == delta["cache_read_input_tokens"] > 0
    assert start["cache_creation_input_tokens"] == delta["cache_creation_input_tokens"] == 0
    async with client.messages.stream(model=MODEL, **params) as stream:
        final = await stream.get_final_message()
    assert split(final.usage)[2] == start["cache_read_input_tokens"]


@pytest.mark.local_config(itpm=100)
async def test_cache_reads_do_not_count_toward_input_tokens_per_minute(
    client: anthropic.AsyncAnthropic,
) -> None:
    words = " ".join(["word"] * 60)
    messages: list[MessageParam] = [{"role": "user", "content": [
        {"type": "text", "text": words, "cache_control": {"type": "ephemeral"}}]}]
    first = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1, messages=messages)
    written = split((await first.parse()).usage)[1]
    assert int(first.headers["anthropic-ratelimit-input-tokens-remaining"]) <= 100 - written
    # Uncached, the same prompt again would be a 429 (see test_ratelimit); read, it passes
    # and takes nothing from the bucket.
    second = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1, messages=messages)
    assert split((await second.parse()).usage) == (0, 0, written)
    left_before = int(first.headers["anthropic-ratelimit-input-tokens-remaining"])
    assert int(second.headers["anthropic-ratelimit-input-tokens-remaining"]) >= left_before


async def test_batch_requests_use_the_cache(client: anthropic.AsyncAnthropic) -> None:
    params: dict[str, Any] = {"model": MODEL, "max_tokens": 100, "system": cached_system(),
                              "messages": user(PROMPT)}
    warm = await client.messages.create(**params)
    batch = await client.messages.batches.create(
        requests=[{"custom_id": "b", "params": params}])  # type: ignore[list-item]
    await wait_ended(client, batch.id)
    (line,) = [r async for r in await client.messages.batches.results(batch.id)]
    result = line.result
    assert result.type == "succeeded"
    assert split(result.message.usage) == (split(warm.usage)[0], 0, split(warm.usage)[1])
    assert result.message.usage.service_tier == "batch"


async def test_at_most_four_markers(client: anthropic.AsyncAnthropic) -> None:
    blocks = [{"type": "text", "text": f"part {i}. ", "cache_control": {"type": "ephemeral"}}
              for i in range(5)]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", cast_to=Message, body={
            "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]})
    assert (info.value.api_message or "").startswith("cache_control:")
