"""Server-sent events: the exact event order, and what faults do to a stream."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from .helpers import MODEL, PROMPT, PROMPT_TOKENS, raw_sse, text_of, user


async def test_sse_events_come_in_the_documented_order(client: anthropic.AsyncAnthropic) -> None:
    counted = await client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    events, lines = await raw_sse(client, max_tokens=100, messages=user(PROMPT))

    names = [name for name, _ in events]
    deltas = names[3:-3]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert deltas and set(deltas) == {"content_block_delta"}
    for name, data in events:
        assert data["type"] == name
    assert not any("[DONE]" in line for line in lines)

    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["model"] == MODEL
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["input_tokens"] == counted.input_tokens
    assert events[1][1] == {"type": "content_block_start", "index": 0,
                            "content_block": {"type": "text", "text": ""}}
    texts = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert all(data["index"] == 0 and data["delta"]["type"] == "text_delta"
               for name, data in events if name == "content_block_delta")
    assert "".join(texts) == PROMPT
    assert events[-3][1] == {"type": "content_block_stop", "index": 0}
    message_delta = events[-2][1]
    assert message_delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert message_delta["usage"]["output_tokens"] == PROMPT_TOKENS


async def test_sse_reports_a_stop_sequence_in_message_delta(
    client: anthropic.AsyncAnthropic,
) -> None:
    events, _ = await raw_sse(
        client, max_tokens=100, messages=user(PROMPT), stop_sequences=["jumps"]
    )
    texts = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert "".join(texts) == "The quick brown fox "
    message_delta = next(data for name, data in events if name == "message_delta")
    assert message_delta["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "jumps"}


async def test_an_empty_block_still_gets_a_delta(client: anthropic.AsyncAnthropic) -> None:
    events, _ = await raw_sse(client, max_tokens=100, messages=user(PROMPT),
                              stop_sequences=["The"])
    names = [name for name, _ in events]
    assert names.count("content_block_delta") >= 1
    message_delta = next(data for name, data in events if name == "message_delta")
    assert message_delta["usage"]["output_tokens"] >= 1


async def test_sdk_stream_events_in_order(client: anthropic.AsyncAnthropic) -> None:
    stream = await client.messages.create(
        model=MODEL, max_tokens=4, messages=user(PROMPT), stream=True
    )
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    # The SDK drops ``ping`` itself.
    assert kinds == ["message_start", "content_block_start",
                     *["content_block_delta"] * (len(kinds) - 5),
                     "content_block_stop", "message_delta", "message_stop"]
    assert len(kinds) > 5
    last_delta = events[-2]
    assert last_delta.type == "message_delta"
    assert last_delta.delta.stop_reason == "max_tokens"
    assert last_delta.usage.output_tokens == 4


async def test_stream_carries_request_id_header(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=5, messages=user("hi"), stream=True
    ) as response:
        assert response.headers["request-id"].startswith("req_")
        assert response.status_code == 200


async def test_midstream_error_event_is_an_api_status_error_with_200(
    client: anthropic.AsyncAnthropic,
) -> None:
    received: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=user(PROMPT),
            extra_headers={"x-laneway-fault": "midstream"},
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)
    err = info.value
    assert err.status_code == 200
    assert err.type == "overloaded_error"
    assert err.api_message == "Overloaded"
    # Not one of the 4xx/5xx classes: the SDK would not retry it.
    assert not isinstance(err, anthropic.InternalServerError | anthropic.RateLimitError)
    assert received and "".join(received) != PROMPT


async def test_midstream_error_event_on_the_wire(client: anthropic.AsyncAnthropic) -> None:
    events, _ = await raw_sse(client, max_tokens=100, messages=user(PROMPT),
                              extra_headers={"x-laneway-fault": "midstream"})
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-1] == "error"
    assert "message_stop" not in names
    assert events[-1][1] == {"type": "error",
                             "error": {"type": "overloaded_error", "message": "Overloaded"}}


#: What the SDK raises while a stream is being read and the connection drops: up to
#: 2.16 httpx2's own error came out unwrapped; from 2.17 the SDK wraps it as
#: ``APIConnectionError`` (``APITimeoutError`` for a timeout), as for a request.
DROPPED = (anthropic.APIConnectionError, httpx2.TransportError)
TIMED_OUT = (anthropic.APITimeoutError, httpx2.TimeoutException)


def assert_dropped(exc: BaseException) -> None:
    """A dropped connection, in whichever form the installed SDK raises it: not a timeout."""
    assert isinstance(exc, DROPPED), repr(exc)
    assert not isinstance(exc, TIMED_OUT), repr(exc)


async def test_dropped_stream_raises_a_connection_error(client: anthropic.AsyncAnthropic) -> None:
    received: list[str] = []
    with pytest.raises(DROPPED) as info:
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=user(PROMPT),
            extra_headers={"x-laneway-fault": "drop"},
        ) as stream:
            async for text in stream.text_stream:
                received.append(text)
    assert_dropped(info.value)
    assert "".join(received) != PROMPT


async def test_a_dropped_short_answer_is_still_cut(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(DROPPED) as info:
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=user("hi"),
            extra_headers={"x-laneway-fault": "drop"},
        ) as stream:
            await stream.get_final_message()
    assert_dropped(info.value)


@pytest.mark.local_config(stall_s=1.0)
async def test_stalled_stream_times_out(client: anthropic.AsyncAnthropic) -> None:
    # A stall sends message_start and then only pings: the client's read timeout fires.
    with pytest.raises(TIMED_OUT):
        async with client.with_options(timeout=0.3).messages.stream(
            model=MODEL, max_tokens=100, messages=user(PROMPT),
            extra_headers={"x-laneway-fault": "stall"},
        ) as stream:
            await stream.get_final_message()


@pytest.mark.local_config(stall_s=1.0)
async def test_stalled_request_times_out(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APITimeoutError):
        await client.with_options(timeout=0.3).messages.create(
            model=MODEL, max_tokens=100, messages=user(PROMPT),
            extra_headers={"x-laneway-fault": "stall"},
        )


async def test_stream_then_plain_request_on_same_client(client: anthropic.AsyncAnthropic) -> None:
    """A finished stream leaves the connection usable."""
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=user(PROMPT)) as s:
        streamed = await s.get_final_message()
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=user(PROMPT))
    assert text_of(streamed) == text_of(message) == PROMPT
