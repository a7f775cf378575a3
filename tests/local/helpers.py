"""Small helpers shared by the local API tests (all of them go through the official SDK)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anthropic
from anthropic.types import Message, MessageParam
from anthropic.types.messages import MessageBatch

from laneway.local.engines import EchoEngine, Prompt, SamplingParams

MODEL = "claude-sonnet-5"
#: The echo engine answers with the last user turn; this one is 10 tokens long.
PROMPT = "The quick brown fox jumps over the lazy dog."
PROMPT_TOKENS = 10


def user(text: str) -> list[MessageParam]:
    return [{"role": "user", "content": text}]


def text_of(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


async def wait_ended(
    client: anthropic.AsyncAnthropic, batch_id: str, *, timeout_s: float = 10.0
) -> MessageBatch:
    """Poll a batch until it has ended (fail the test if it does not in time)."""
    deadline = time.monotonic() + timeout_s
    while True:
        batch = await client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.processing_status}"
        await asyncio.sleep(0.02)


async def raw_sse(
    client: anthropic.AsyncAnthropic, **params: Any
) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """POST a streaming request and return its SSE events as (event name, data) pairs,
    with the raw lines, exactly as they came off the wire (the SDK's own iterator
    drops ``ping``)."""
    async with client.messages.with_streaming_response.create(
        model=MODEL, stream=True, **params
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = [line async for line in response.iter_lines()]
    events: list[tuple[str, dict[str, Any]]] = []
    name: str | None = None
    for line in lines:
        if line.startswith("event: "):
            assert name is None, f"two event lines in a row: {line!r}"
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            assert name is not None, f"data without an event line: {line!r}"
            events.append((name, json.loads(line.removeprefix("data: "))))
            name = None
        else:
            assert line == "", f"unexpected SSE line {line!r}"
    assert name is None, "the stream ended after an event line"
    return events, lines


class RecordingEngine(EchoEngine):
    """The echo engine, keeping every prompt and sampling it was asked to generate with
    (plug it in with ``start_local(config, engine=RecordingEngine())``)."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: list[Prompt] = []
        self.sampling: list[SamplingParams] = []

    async def generate(self, prompt: Prompt, params: SamplingParams) -> AsyncIterator[str]:
        self.prompts.append(prompt)
        self.sampling.append(params)
        async for token in super().generate(prompt, params):
            yield token
