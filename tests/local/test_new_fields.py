"""What the local API does with the request fields SDK 2.17 added (see
``laneway/local/surface.py`` for why each is honoured, ignored or refused)."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import Message

from laneway.local import RunningLocal

from .helpers import MODEL, PROMPT, RecordingEngine, raw_sse, text_of, user
from .test_cache import cached_system, split

WEATHER = {"name": "get_weather", "description": "Weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}
TIME = {"name": "get_time", "description": "Time in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


async def _post(client: anthropic.AsyncAnthropic, **body: Any) -> Message:
    return await client.post("/v1/messages", cast_to=Message, body={
        "model": MODEL, "max_tokens": 50, "messages": user(PROMPT), **body})


async def test_max_tokens_0_fills_the_cache_and_answers_nothing(
    client: anthropic.AsyncAnthropic,
) -> None:
    params: dict[str, Any] = {"system": cached_system(), "messages": user(PROMPT)}
    warm = await client.messages.create(model=MODEL, max_tokens=0, **params)
    assert (warm.content, warm.stop_reason, warm.usage.output_tokens) == ([], "max_tokens", 0)
    plain, written, _ = split(warm.usage)
    assert written > 0
    events, _ = await raw_sse(client, max_tokens=0, **params)
    names = [name for name, _ in events if name != "ping"]
    assert names == ["message_start", "message_delta", "message_stop"]
    answer = await client.messages.create(model=MODEL, max_tokens=50, **params)
    assert split(answer.usage) == (plain, 0, written) and text_of(answer) == PROMPT


@pytest.mark.parametrize(("body", "named"), [
    ({"billing_policy": {"type": "billing_policy", "bill_to": "user_profile"}},
     "billing_policy.bill_to: "),
    ({"fallback_credit_token": "fct_from_elsewhere"}, "fallback_credit_token: "),
    ({"compaction": {"type": "summarize"}}, "compaction: "),
    ({"tools": [{"type": "memory_20250818", "name": "memory"}],
      "tool_choice": {"type": "tool", "name": "memory"}}, "tool_choice.name: "),
])
async def test_what_would_mislead_is_refused_naming_the_field(
    client: anthropic.AsyncAnthropic, body: dict[str, Any], named: str,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await _post(client, **body)
    assert (info.value.api_message or "").startswith(named)


async def test_client_tools_and_fallbacks_are_accepted(client: anthropic.AsyncAnthropic) -> None:
    message = await _post(client, fallbacks=[{"model": "claude-opus-4-8"}], tools=[
        {"type": "memory_20250818", "name": "memory"},
        {"type": "bash_20250124", "name": "bash"}, {"type": "computer_toolset_20260801"}])
    assert text_of(message) == PROMPT and message.stop_reason == "end_turn"


async def test_tool_changes_decide_what_tool_choice_can_name(
    client: anthropic.AsyncAnthropic,
) -> None:
    def changed(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
        return [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"},
                {"role": "system", "content": list(blocks)}, *user(PROMPT)]

    added = {"type": "tool_addition", "tool": {"type": "tool_definition", "definition": TIME}}
    message = await _post(client, tools=[WEATHER], messages=changed(added),
                          tool_choice={"type": "tool", "name": "get_time"})
    assert message.content[0].type == "tool_use" and message.content[0].name == "get_time"
    removed = {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "get_weather"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        await _post(client, tools=[WEATHER, TIME], messages=changed(removed),
                    tool_choice={"type": "tool", "name": "get_weather"})
    assert (info.value.api_message or "").startswith("tool_choice.name: ")
    unknown = {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "nope"}}
    with pytest.raises(anthropic.BadRequestError) as info:
        await _post(client, tools=[WEATHER], messages=changed(unknown))
    assert info.value.body["error"]["details"] == {"error_code": "tool_reference_unresolved"}


async def test_a_system_message_cleared_at_the_next_user_message_is_not_shown(
    recording_client: anthropic.AsyncAnthropic,
    recording: tuple[RunningLocal, RecordingEngine],
) -> None:
    note = {"role": "system", "content": "Be terse.", "clear_at": "next_user_message"}
    await _post(recording_client, messages=[{"role": "user", "content": "hi"}, note])
    await _post(recording_client, messages=[{"role": "user", "content": "hi"}, note,
                                            {"role": "assistant", "content": "ok"},
                                            {"role": "user", "content": PROMPT}])
    first, second = recording[1].prompts
    assert ("system", "Be terse.") in first.turns
    assert ("system", "Be terse.") not in second.turns


async def test_search_results_are_read(client: anthropic.AsyncAnthropic) -> None:
    block = {"type": "search_result", "source": "https://a.example", "title": "",
             "content": [{"type": "text", "text": PROMPT}]}
    message = await _post(client, messages=[{"role": "user", "content": [block]}])
    assert text_of(message) == PROMPT
