"""What the local API does not implement: ignored when that is safe (and said so in the
model entry), otherwise a 400 ``invalid_request_error`` naming the field, never a
plain answer a client then misreads."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import EchoEngine

from .helpers import MODEL, PROMPT, text_of, user, wait_ended

WEATHER_TOOL = {"name": "get_weather", "description": "Weather in a city.",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                 "required": ["city"]}}
SCHEMA_FORMAT = {"type": "json_schema", "schema": {
    "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
    "additionalProperties": False}}
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}

#: Accepted and ignored: a client cannot be misled by their absence.
IGNORED: dict[str, dict[str, Any]] = {
    "thinking enabled": {"max_tokens": 2000,
                         "thinking": {"type": "enabled", "budget_tokens": 1024}},
    "thinking adaptive": {"thinking": {"type": "adaptive"}},
    "thinking disabled": {"thinking": {"type": "disabled"}},
    "effort": {"output_config": {"effort": "low"}},
    "tools with tool_choice auto": {"tools": [WEATHER_TOOL], "tool_choice": {"type": "auto"}},
    "tool_choice none": {"tools": [WEATHER_TOOL], "tool_choice": {"type": "none"}},
    "cache_control": {"cache_control": {"type": "ephemeral", "ttl": "1h"}},
    "service_tier": {"service_tier": "standard_only"},
    "speed and geo": {"speed": "standard", "inference_geo": "us"},
    "metadata": {"metadata": {"user_id": "u-1"}},
    "context_management": {"context_management": {"edits": []}},
}


@pytest.mark.parametrize("case", sorted(IGNORED))
async def test_safely_ignorable_fields_are_accepted(
    client: anthropic.AsyncAnthropic, case: str
) -> None:
    body = {"model": MODEL, "max_tokens": 100, "messages": user(PROMPT), **IGNORED[case]}
    message = await client.post("/v1/messages", body=body, cast_to=Message)
    assert text_of(message) == PROMPT
    assert [b.type for b in message.content] == ["text"]


#: Refused by an engine whose model entry says it cannot keep to a schema (both of
#: laneway's engines can: see test_structured.py), with the field the message names.
NEEDS_SCHEMAS: dict[str, tuple[dict[str, Any], str]] = {
    "tool_choice any": ({"tools": [WEATHER_TOOL], "tool_choice": {"type": "any"}},
                        "tool_choice.type:"),
    "tool_choice tool": ({"tools": [WEATHER_TOOL],
                          "tool_choice": {"type": "tool", "name": "get_weather"}},
                         "tool_choice.type:"),
    "structured outputs": ({"output_config": {"format": SCHEMA_FORMAT}},
                           "output_config.format:"),
}
#: Refused, with the field the message names first.
REFUSED: dict[str, tuple[dict[str, Any], str]] = {
    "server tool": ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
                    "tools.0.type:"),
    "beta output_format": ({"output_format": SCHEMA_FORMAT}, "output_format:"),
    "mcp servers": ({"mcp_servers": [{"type": "url", "url": "https://mcp.invalid",
                                      "name": "x"}]}, "mcp_servers:"),
    "unknown field": ({"frobnicate": True}, "frobnicate: Extra inputs are not permitted"),
    "thinking budget too small": ({"thinking": {"type": "enabled", "budget_tokens": 10}},
                                  "thinking.budget_tokens:"),
    "thinking budget over max_tokens": (
        {"max_tokens": 1500, "thinking": {"type": "enabled", "budget_tokens": 2000}},
        "thinking.budget_tokens:"),
    "thinking type": ({"thinking": {"type": "deep"}}, "thinking.type:"),
    "effort value": ({"output_config": {"effort": "extreme"}}, "output_config.effort:"),
    "service_tier value": ({"service_tier": "priority"}, "service_tier:"),
    "cache ttl": ({"cache_control": {"type": "ephemeral", "ttl": "2h"}}, "cache_control.ttl:"),
}


def _refused_body(case: str) -> tuple[dict[str, Any], str]:
    extra, field = REFUSED[case]
    return {"model": MODEL, "max_tokens": 100, "messages": user(PROMPT), **extra}, field


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_what_cannot_be_ignored_is_a_400_naming_the_field(
    client: anthropic.AsyncAnthropic, case: str
) -> None:
    body, field = _refused_body(case)
    for stream in (False, True):  # a stream is refused before it starts, as JSON
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.post("/v1/messages", body={**body, "stream": stream}, cast_to=Message)
        assert info.value.type == "invalid_request_error"
        assert info.value.response.headers["content-type"] == "application/json"
        assert (info.value.api_message or "").startswith(field)


@pytest.mark.parametrize(("block", "field"), [
    ({"type": "image", "source": PNG}, "messages.0.content.1:"),
    ({"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                     "data": "JVBERi0="}}, "messages.0.content.1.source:"),
    ({"type": "tool_result", "tool_use_id": "toolu_1",
      "content": [{"type": "image", "source": PNG}]}, "messages.0.content.1.content.0:"),
    ({"type": "container_upload", "file_id": "file_1"}, "messages.0.content.1.type:"),
])
async def test_content_the_engine_cannot_read_is_refused(
    client: anthropic.AsyncAnthropic, block: dict[str, Any], field: str
) -> None:
    messages = [{"role": "user", "content": [{"type": "text", "text": "Describe:"}, block]}]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", cast_to=Message,
                          body={"model": MODEL, "max_tokens": 10, "messages": messages})
    assert (info.value.api_message or "").startswith(field)


async def test_plain_text_documents_and_thinking_history_are_read(
    client: anthropic.AsyncAnthropic,
) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=[
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "ok"}]},
        {"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": "The quick brown fox "}},
            {"type": "text", "text": "jumps over the lazy dog."}]},
    ])
    assert text_of(message) == PROMPT  # the echo engine read the document's text


async def test_refused_params_in_a_batch_come_back_errored(
    client: anthropic.AsyncAnthropic,
) -> None:
    body, field = _refused_body("server tool")
    ok, _ = _refused_body("unknown field")
    del ok["frobnicate"]
    batch = await client.messages.batches.create(requests=[
        {"custom_id": "refused", "params": body},  # type: ignore[typeddict-item]
        {"custom_id": "fine", "params": ok},  # type: ignore[typeddict-item]
    ])
    await wait_ended(client, batch.id)
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(
        batch.id)}
    refused = results["refused"]
    assert refused.type == "errored"
    assert refused.error.error.type == "invalid_request_error"
    assert refused.error.error.message.startswith(field)
    assert results["fine"].type == "succeeded"


class _NoSchemaEngine(EchoEngine):
    """An engine whose entry says it cannot keep to schemas: what needs one is refused."""

    def describe(self) -> dict[str, Any]:
        return {"capabilities": {"structured_outputs": {"supported": False}}}


@pytest.fixture
def no_schema_api() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(), engine=_NoSchemaEngine())
    try:
        yield running
    finally:
        running.stop(wait=False)


@pytest.mark.parametrize("case", sorted(NEEDS_SCHEMAS))
async def test_refusals_follow_the_engines_capabilities(
    client: anthropic.AsyncAnthropic, no_schema_api: RunningLocal, case: str
) -> None:
    extra, field = NEEDS_SCHEMAS[case]
    body = {"model": MODEL, "max_tokens": 100, "messages": user(PROMPT), **extra}
    # The echo engine keeps to schemas (its entry says so): the request is answered.
    entry = await client.models.retrieve(MODEL)
    assert entry.capabilities is not None
    assert entry.capabilities.structured_outputs.supported is True
    message = await client.post("/v1/messages", body=body, cast_to=Message)
    assert message.content and message.content[0].type in ("text", "tool_use")
    # An engine whose entry says it cannot gets a 400 naming the field, never text.
    async with anthropic.AsyncAnthropic(
        base_url=no_schema_api.base_url, api_key="k", max_retries=0
    ) as other:
        entry = await other.models.retrieve(MODEL)
        assert entry.capabilities is not None
        assert entry.capabilities.structured_outputs.supported is False
        for stream in (False, True):
            with pytest.raises(anthropic.BadRequestError) as info:
                await other.post("/v1/messages", body={**body, "stream": stream},
                                 cast_to=Message)
            assert info.value.type == "invalid_request_error"
            assert (info.value.api_message or "").startswith(field)
