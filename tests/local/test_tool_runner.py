"""The SDK's tool runner (``client.beta.messages.tool_runner``) against the local API on
the echo engine, streamed and not: it threads by default (SDK 2.17), so its first turn
creates a thread and the turn with the tool's result continues it."""

from __future__ import annotations

import json

import anthropic
import anthropic.types
import pytest
from anthropic.types.beta import BetaMessage

from laneway.local import RunningLocal

from .helpers import MODEL, text_of

QUESTION = "What is the weather in Paris?"
#: SDK 2.17's runner threads its turns; an older one sends the whole history each time.
THREADED = hasattr(anthropic.types, "ThreadNotFoundError")


def _weather_tool(calls: list[str]) -> anthropic.lib.tools.BetaAsyncFunctionTool[str]:
    @anthropic.beta_async_tool
    async def get_weather(city: str) -> str:
        """Get the current weather in a city.

        Args:
            city: the city
        """
        calls.append(city)
        return json.dumps({"city": city, "temperature_c": 21})

    return get_weather


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_tool_runner_calls_the_tool_and_continues_the_thread(
    client: anthropic.AsyncAnthropic, local_api: RunningLocal, stream: bool,
) -> None:
    calls: list[str] = []
    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=100, tools=[_weather_tool(calls)],
        messages=[{"role": "user", "content": QUESTION}], stream=stream)
    replies: list[BetaMessage] = []
    async for item in runner:
        if isinstance(item, BetaMessage):
            replies.append(item)
        else:  # a stream of the turn's events
            async for _ in item:
                pass
            replies.append(await item.get_final_message())
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    assert calls == [""]  # the echo engine's minimal valid input
    assert json.loads(text_of(replies[-1])) == {"city": "", "temperature_c": 21}
    stats = local_api.api.stats
    assert (stats["thread_creates"], stats["thread_continues"]) == ((1, 1) if THREADED else (0, 0))


async def test_a_forced_tool_choice_loops_until_max_iterations(
    client: anthropic.AsyncAnthropic, local_api: RunningLocal,
) -> None:
    calls: list[str] = []
    runner = client.beta.messages.tool_runner(
        model=MODEL, max_tokens=100, tools=[_weather_tool(calls)],
        tool_choice={"type": "any"}, max_iterations=3,
        messages=[{"role": "user", "content": "hello"}])
    assert [m.stop_reason async for m in runner] == ["tool_use"] * 3
    assert len(calls) == 3
    assert local_api.api.stats["thread_continues"] == (2 if THREADED else 0)
