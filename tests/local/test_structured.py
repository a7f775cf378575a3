"""Structured outputs, forced tool calls, context limits and GET /v1/models, on the echo
engine, through the official SDK (the smollm2 side is in test_smollm2_structured.py).

The echo engine answers a schema with a deterministic minimal instance of it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anthropic
import jsonschema
import pytest

from laneway.local import RunningLocal
from laneway.local.engines.echo import EchoEngine
from laneway.provider.client import Provider
from laneway.runs.library import run

from .helpers import MODEL, raw_sse, user

ORDER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customer": {"type": "object",
                     "properties": {"name": {"type": "string", "minLength": 2},
                                    "vip": {"type": "boolean"}},
                     "required": ["name", "vip"]},
        "items": {"type": "array", "minItems": 2,
                  "items": {"$ref": "#/$defs/item"}},
        "status": {"enum": ["open", "shipped"]},
        "note": {"type": "string"},
    },
    "required": ["customer", "items", "status"],
    "$defs": {"item": {"type": "object",
                       "properties": {"sku": {"type": "string"},
                                      "qty": {"type": "integer", "minimum": 1}},
                       "required": ["sku", "qty"]}},
}
WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": {"type": "object",
                     "properties": {"city": {"type": "string"},
                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                     "required": ["city", "unit"]},
}
TIME = {
    "name": "get_time",
    "description": "The time now in a time zone.",
    "input_schema": {"type": "object", "properties": {"zone": {"type": "string"}},
                     "required": ["zone"]},
}
FORMAT = {"output_config": {"format": {"type": "json_schema", "schema": ORDER}}}


async def test_json_schema_output_is_valid_json(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=200, messages=user("An order, please."),
        extra_body=FORMAT)
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason == "end_turn"
    text = message.content[0].text  # type: ignore[union-attr]
    jsonschema.validate(json.loads(text), ORDER)

    async with client.messages.stream(model=MODEL, max_tokens=200, extra_body=FORMAT,
                                      messages=user("An order, please.")) as stream:
        final = await stream.get_final_message()
    assert final.content[0].text == text  # type: ignore[union-attr]


async def test_forced_tool_call(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=200, messages=user("Weather in Paris?"),
        tools=[TIME, WEATHER], tool_choice={"type": "tool", "name": "get_weather"})
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_")
    jsonschema.validate(block.input, WEATHER["input_schema"])


async def test_tool_choice_any_picks_a_tool(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=200, messages=user("What time is it in the zone UTC?"),
        tools=[WEATHER, TIME], tool_choice={"type": "any"})
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_time"
    jsonschema.validate(block.input, TIME["input_schema"])


async def test_tool_choice_auto_answers_text(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=200, messages=user("hello there"), tools=[WEATHER])
    assert message.stop_reason == "end_turn"
    assert [block.type for block in message.content] == ["text"]


async def test_forced_tool_call_streams_input_json_deltas(
    client: anthropic.AsyncAnthropic,
) -> None:
    params: dict[str, Any] = {
        "max_tokens": 200, "messages": user("Weather in Paris?"), "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather"}}
    events, _ = await raw_sse(client, **params)
    names = [name for name, _ in events if name != "ping"]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = dict(events)["content_block_start"]["content_block"]
    assert (start["type"], start["name"], start["input"]) == ("tool_use", "get_weather", {})
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert len(deltas) > 1 and all(d["type"] == "input_json_delta" for d in deltas)
    jsonschema.validate(json.loads("".join(d["partial_json"] for d in deltas)),
                        WEATHER["input_schema"])
    assert dict(events)["message_delta"]["delta"]["stop_reason"] == "tool_use"

    async with client.messages.stream(model=MODEL, **params) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use"
    jsonschema.validate(final.content[0].input, WEATHER["input_schema"])


async def test_messages_parse_with_a_model(client: anthropic.AsyncAnthropic) -> None:
    if not hasattr(client.messages, "parse"):
        pytest.skip("this SDK has no messages.parse")
    import pydantic

    class Item(pydantic.BaseModel):
        sku: str
        qty: int

    class Order(pydantic.BaseModel):
        items: list[Item]
        status: str

    parsed = await client.messages.parse(
        model=MODEL, max_tokens=200, messages=user("An order."), output_format=Order)
    assert isinstance(parsed.parsed_output, Order)


@pytest.mark.parametrize(("params", "field"), [
    ({"output_config": {"format": {"type": "json_schema",
                                   "schema": {"type": "object", "required": ["a"],
                                              "properties": {"a": {"$ref": "#/nowhere"}}}}}},
     "output_config.format.schema"),
    ({"output_config": {"format": {"type": "json_schema", "schema": "not a schema"}}},
     "output_config.format.schema"),
    ({"output_config": {"format": {"type": "yaml"}}}, "output_config.format.type"),
    ({"tools": [WEATHER], "tool_choice": {"type": "tool", "name": "nope"}},
     "tool_choice.name"),
    ({"tool_choice": {"type": "any"}}, "tool_choice"),
])
async def test_bad_structured_requests_are_400(
    client: anthropic.AsyncAnthropic, params: dict[str, Any], field: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=MODEL, max_tokens=50, messages=user("x"),
                                     extra_body=params)
    assert (info.value.api_message or "").startswith(field + ":")


async def test_a_prompt_longer_than_the_context_is_a_400(
    client: anthropic.AsyncAnthropic,
) -> None:
    window = EchoEngine.context_window
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=MODEL, max_tokens=5,
                                     messages=user("word " * window))
    body: Any = info.value.body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("prompt is too long: ")
    assert body["error"]["message"].endswith(f" tokens > {window - 1} maximum")


async def test_models_lists_the_engine(client: anthropic.AsyncAnthropic) -> None:
    page = await client.models.list(limit=1000)
    [model] = [m for m in page.data if m.id == "echo"]
    assert model.type == "model"
    assert (await client.models.retrieve("echo")).id == "echo"
    # Its limits and what it does, on its own entry and on the Claude ids it serves.
    window = EchoEngine.context_window
    for entry in (model, await client.models.retrieve(MODEL)):
        assert (entry.max_input_tokens, entry.max_tokens) == (window - 1, window - 1)
        assert entry.capabilities is not None
        assert entry.capabilities.structured_outputs.supported is True
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-nothing")


async def test_runner_records_a_too_long_prompt_without_retrying(
    tmp_path: Path, local_api: RunningLocal
) -> None:
    long_prompt = "word " * EchoEngine.context_window
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "long", "prompt": long_prompt}) + "\n"
                   + json.dumps({"id": "short", "prompt": "hello there"}) + "\n")
    provider = Provider.at(local_api.base_url)
    try:
        summary = await run(inp, tmp_path / "out.jsonl", provider=provider,
                            db=tmp_path / "l.db")
    finally:
        await provider.aclose()
    rows = {r["custom_id"]: r["result"]
            for r in map(json.loads, (tmp_path / "out.jsonl").read_text().splitlines())}
    assert rows["short"]["type"] == "succeeded"
    error = rows["long"]["error"]["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith("prompt is too long: ")
    assert summary.errored == 1 and summary.retries == 0 and summary.requests == 2
