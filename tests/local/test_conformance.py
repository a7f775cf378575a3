"""Every object the local API sends, checked field for field against the official SDK's
own types: validated strictly (the SDK itself only constructs, so a wrong shape would
pass unnoticed until a client touched it), with no key the type does not declare, and
with the optional fields the API always sends present."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pydantic
import pytest
from anthropic.types import (
    ErrorResponse,
    Message,
    MessageTokensCount,
    ModelInfo,
    RawMessageStreamEvent,
)
from anthropic.types.messages import (
    DeletedMessageBatch,
    MessageBatch,
    MessageBatchIndividualResponse,
)

from .helpers import MODEL, PROMPT, raw_sse, user, wait_ended

#: Fields the SDK types mark optional that the API always sends, by where they sit.
ALWAYS = {
    "usage": {"cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
              "service_tier"},
    "message_delta.usage": {"input_tokens", "cache_creation_input_tokens",
                            "cache_read_input_tokens"},
}


def extras(value: Any, path: str = "") -> list[str]:
    """Keys of ``value`` (a validated SDK object) that its type does not declare."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}.{key}".lstrip(".") for key in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += extras(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += extras(item, f"{path}.{i}")
    return found


def conforms(type_: Any, data: dict[str, Any]) -> Any:
    parsed = pydantic.TypeAdapter(type_).validate_python(data, strict=False)
    assert extras(parsed) == [], f"undeclared keys in {data}"
    return parsed


def has_always(usage: dict[str, Any], where: str) -> None:
    missing = ALWAYS[where] - set(usage)
    assert not missing, f"{where} lacks {sorted(missing)}"


async def test_a_message_conforms(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT))
    body = raw.http_response.json()
    conforms(Message, body)
    has_always(body["usage"], "usage")


async def test_every_stream_event_conforms(client: anthropic.AsyncAnthropic) -> None:
    events, _ = await raw_sse(client, max_tokens=100, messages=user(PROMPT),
                              stop_sequences=["lazy"])
    for name, data in events:
        if name == "ping":
            assert data == {"type": "ping"}
            continue
        conforms(RawMessageStreamEvent, data)
    start = events[0][1]["message"]
    has_always(start["usage"], "usage")
    delta = next(data for name, data in events if name == "message_delta")
    has_always(delta["usage"], "message_delta.usage")


async def test_count_tokens_models_and_errors_conform(
    client: anthropic.AsyncAnthropic,
) -> None:
    counted = await client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=user(PROMPT))
    conforms(MessageTokensCount, counted.http_response.json())
    listed = await client.models.with_raw_response.list(limit=1000)
    for entry in listed.http_response.json()["data"]:
        conforms(ModelInfo, entry)
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.models.retrieve("nope")
    conforms(ErrorResponse, info.value.response.json())


async def test_batch_objects_and_results_conform(client: anthropic.AsyncAnthropic) -> None:
    created = await client.messages.batches.with_raw_response.create(requests=[
        {"custom_id": "ok", "params": {"model": MODEL, "max_tokens": 100,
                                       "messages": user(PROMPT)}},
        {"custom_id": "bad", "params": {"model": MODEL, "max_tokens": 0,
                                        "messages": user(PROMPT)}},
    ])
    batch = conforms(MessageBatch, created.http_response.json())
    await wait_ended(client, batch.id)
    ended = await client.messages.batches.with_raw_response.retrieve(batch.id)
    conforms(MessageBatch, ended.http_response.json())
    results = await client.get(f"/v1/messages/batches/{batch.id}/results",
                               cast_to=httpx2.Response,
                               options={"headers": {"x-stainless-raw-response": "true"}})
    lines = [line for line in results.text.splitlines() if line]
    assert len(lines) == 2
    for line in lines:
        item = json.loads(line)
        conforms(MessageBatchIndividualResponse, item)
        if item["result"]["type"] == "succeeded":
            has_always(item["result"]["message"]["usage"], "usage")
    deleted = await client.messages.batches.with_raw_response.delete(batch.id)
    conforms(DeletedMessageBatch, deleted.http_response.json())


def test_the_check_sees_an_undeclared_key_and_a_wrong_type() -> None:
    good = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
            "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}
    conforms(Message, good)
    with pytest.raises(AssertionError):
        conforms(Message, {**good, "usage": {**good["usage"], "cache_tokens": 3}})
    with pytest.raises(pydantic.ValidationError):
        conforms(Message, {**good, "stop_reason": "finished"})
