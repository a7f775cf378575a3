"""System-role messages (SDK 2.x's ``SystemMessageParam``), as Claude Code sends one
mid-conversation: accepted, and handed to the engine as system text at that point."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import Message, MessageParam

from laneway.local import RunningLocal
from laneway.local.engines import Prompt

from .helpers import MODEL, PROMPT, RecordingEngine, text_of, user, wait_ended

CONVERSATION: list[MessageParam] = [
    {"role": "user", "content": "an earlier question"},
    {"role": "assistant", "content": "an earlier answer"},
    {"role": "system", "content": "Answer in French from now on."},
    {"role": "user", "content": PROMPT},
]


async def test_system_message_mid_conversation_reaches_the_engine_in_place(
    recording: tuple[RunningLocal, RecordingEngine], recording_client: anthropic.AsyncAnthropic,
) -> None:
    engine, client = recording[1], recording_client
    message = await client.messages.create(
        model=MODEL, max_tokens=100, system="Be brief.", messages=CONVERSATION)
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=CONVERSATION
    ) as stream:
        streamed = await stream.get_final_message()
    counted = await client.messages.count_tokens(model=MODEL, messages=CONVERSATION)
    without = await client.messages.count_tokens(
        model=MODEL, messages=[m for m in CONVERSATION if m["role"] != "system"])

    assert text_of(message) == text_of(streamed) == PROMPT
    assert engine.prompts[0] == Prompt(system="Be brief.", turns=(
        ("user", "an earlier question"), ("assistant", "an earlier answer"),
        ("system", "Answer in French from now on."), ("user", PROMPT),
    ))
    assert engine.prompts[1].turns == engine.prompts[0].turns
    # The system message is input: counted, and billed as such.
    assert streamed.usage.input_tokens == counted.input_tokens > without.input_tokens


async def test_system_message_as_text_blocks(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=[
        {"role": "system", "content": [{"type": "text", "text": "You are terse.",
                                        "cache_control": {"type": "ephemeral"}}]},
        *user(PROMPT),
    ])
    assert text_of(message) == PROMPT


async def test_system_message_takes_only_text(client: anthropic.AsyncAnthropic) -> None:
    body: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "messages": [
        *user("hi"),
        {"role": "system", "content": [{"type": "image", "source": {
            "type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
    ]}
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", body=body, cast_to=Message)
    assert (info.value.api_message or "").startswith("messages.1.content.0.type:")


async def test_system_message_in_a_batch(client: anthropic.AsyncAnthropic) -> None:
    batch = await client.messages.batches.create(requests=[
        {"custom_id": "sys", "params": {"model": MODEL, "max_tokens": 100,
                                        "messages": CONVERSATION}},
    ])
    await wait_ended(client, batch.id)
    results = [r async for r in await client.messages.batches.results(batch.id)]
    assert results[0].result.type == "succeeded"
    assert text_of(results[0].result.message) == PROMPT
