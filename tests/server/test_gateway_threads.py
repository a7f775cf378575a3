"""Message threads through the gateway (``laneway serve``, upstream the local API): the
body and the ``anthropic-beta`` header go up as they came, the thread rejections come
back with their ``error.details``, and each turn is recorded with the usage the upstream
counted (a ``continue`` is billed for the whole held conversation, not the body)."""

from __future__ import annotations

import json

import anthropic
import anthropic.types
import pytest
from anthropic.types.beta import BetaMessage

from laneway.server.gateway.exchange import Exchange

from .helpers import Served, wait_for

if not hasattr(anthropic.types, "ThreadNotFoundError"):  # SDKs before 2.17 send no threads
    pytest.skip("this SDK has no message threads", allow_module_level=True)

from anthropic.types import ThreadAlreadyContinuedError, ThreadNotFoundError

MODEL = "claude-haiku-4-5"


def _sdk(served: Served) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=served.base_url, api_key="client-key", max_retries=0)


@anthropic.beta_tool
def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
        city: the city
    """
    return json.dumps({"city": city, "temperature_c": 21})


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_tool_runner_threads_through_the_gateway(served: Served, stream: bool) -> None:
    seen: list[Exchange] = []
    served.app.state.gateway.observers.append(seen.append)
    runner = _sdk(served).beta.messages.tool_runner(
        model=MODEL, max_tokens=100, tools=[get_weather], stream=stream,
        messages=[{"role": "user", "content": "What is the weather in Paris?"}])
    replies: list[BetaMessage] = []
    for item in runner:
        replies.append(item if isinstance(item, BetaMessage) else item.get_final_message())
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    stats = served.local.api.stats
    assert (stats["thread_creates"], stats["thread_continues"]) == (1, 1)
    wait_for(lambda: len(seen) == 2, timeout_s=3, what="both turns' records")
    for record, reply in zip(seen, replies, strict=True):
        assert record.status == 200
        assert record.usage["input_tokens"] == reply.usage.input_tokens
    # The continue sent one tool_result, and was billed for the whole conversation.
    assert replies[1].usage.input_tokens > replies[0].usage.input_tokens


def test_thread_rejections_come_back_with_their_details(served: Served) -> None:
    client = _sdk(served)
    with pytest.raises(ThreadNotFoundError) as missing:
        client.beta.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "hi"}],
            thread={"type": "continue", "previous_message_id": "msg_01unknown"})
    assert missing.value.body["error"]["details"] == {"error_code": "thread_not_found"}
    first = client.beta.messages.create(model=MODEL, max_tokens=5, thread={"type": "create"},
                                        messages=[{"role": "user", "content": "hi"}])
    later = {"type": "continue", "previous_message_id": first.id}
    client.beta.messages.create(model=MODEL, max_tokens=5, thread=later,  # type: ignore[arg-type]
                                messages=[{"role": "user", "content": "again"}])
    with pytest.raises(ThreadAlreadyContinuedError):
        client.beta.messages.create(model=MODEL, max_tokens=5, thread=later,  # type: ignore[arg-type]
                                    messages=[{"role": "user", "content": "again"}])
