"""POST /v1/messages and /v1/messages/count_tokens through the official SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic.types import MessageParam

from .helpers import MODEL, PROMPT, PROMPT_TOKENS, text_of, user


async def test_create_returns_a_message_with_usage(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=user(PROMPT))

    assert message.id.startswith("msg_")
    assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
    assert [block.type for block in message.content] == ["text"]
    assert text_of(message) == PROMPT
    assert message.stop_reason == "end_turn"
    assert message.stop_sequence is None
    counted = await client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    assert message.usage.input_tokens == counted.input_tokens > 0
    assert message.usage.output_tokens == PROMPT_TOKENS
    assert message.usage.cache_creation_input_tokens == 0
    assert message.usage.cache_read_input_tokens == 0
    assert message._request_id is not None and message._request_id.startswith("req_")


async def test_ids_are_unique(client: anthropic.AsyncAnthropic) -> None:
    first = await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    second = await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    assert first.id != second.id
    assert first._request_id != second._request_id


#: Requests whose streamed and non-streamed answers must agree.
SAME_ANSWER_CASES: dict[str, dict[str, Any]] = {
    "plain": {"max_tokens": 100, "messages": user(PROMPT)},
    "max_tokens": {"max_tokens": 4, "messages": user(PROMPT)},
    "stop_sequence_split_across_tokens": {
        "max_tokens": 100, "messages": user(PROMPT), "stop_sequences": ["ox ju"],
    },
    "system_multi_turn_prefill": {
        "max_tokens": 100,
        "system": "Answer in one line.",
        "messages": [
            {"role": "user", "content": "an earlier question"},
            {"role": "assistant", "content": "an earlier answer"},
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": "The quick"},
        ],
    },
    "stop_sequence_at_the_start": {
        "max_tokens": 100, "messages": user(PROMPT), "stop_sequences": ["The"],
    },
}


@pytest.mark.parametrize("case", sorted(SAME_ANSWER_CASES))
async def test_stream_final_message_equals_create(
    client: anthropic.AsyncAnthropic, case: str
) -> None:
    params = SAME_ANSWER_CASES[case]
    plain = await client.messages.create(model=MODEL, **params)
    async with client.messages.stream(model=MODEL, **params) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()

    assert "".join(pieces) == text_of(final) == text_of(plain)
    assert final.stop_reason == plain.stop_reason
    assert final.stop_sequence == plain.stop_sequence
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens >= 1
    assert final.id != plain.id


async def test_text_stream_yields_token_by_token(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(
        model=MODEL, max_tokens=100, messages=user(PROMPT)
    ) as stream:
        pieces = [text async for text in stream.text_stream]
    assert pieces == ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy",
                      " dog", "."]


async def test_max_tokens_cuts_the_answer(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(model=MODEL, max_tokens=3, messages=user(PROMPT))
    assert message.stop_reason == "max_tokens"
    assert message.stop_sequence is None
    assert text_of(message) == "The quick brown"
    assert message.usage.output_tokens == 3


STOP_CASES = [
    # (stop sequence, text before it)
    ("fox", "The quick brown "),  # inside one token
    ("ck br", "The qui"),  # split across two tokens
    ("n fox jum", "The quick brow"),  # across three tokens
    ("lazy dog.", "The quick brown fox jumps over the "),  # the very end
]


@pytest.mark.parametrize(("stop", "before"), STOP_CASES)
async def test_stop_sequence_is_reported_and_never_sent(
    client: anthropic.AsyncAnthropic, stop: str, before: str
) -> None:
    params: dict[str, Any] = {
        "model": MODEL, "max_tokens": 100, "messages": user(PROMPT),
        "stop_sequences": ["never-there", stop],
    }
    message = await client.messages.create(**params)
    assert message.stop_reason == "stop_sequence"
    assert message.stop_sequence == stop
    assert text_of(message) == before

    async with client.messages.stream(**params) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    # Everything sent concatenates to the text before the stop: no piece of it went out.
    assert "".join(pieces) == before
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", stop)


async def test_earliest_stop_sequence_wins(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT), stop_sequences=["lazy", "brown"]
    )
    assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "brown")
    assert text_of(message) == "The quick "


async def test_held_back_prefix_of_a_stop_is_released(client: anthropic.AsyncAnthropic) -> None:
    """Text that could start a stop sequence is held back, then sent when it does not."""
    params: dict[str, Any] = {
        "model": MODEL, "max_tokens": 100, "messages": user(PROMPT),
        "stop_sequences": ["quick red", "dog!"],
    }
    async with client.messages.stream(**params) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == PROMPT
    assert final.stop_reason == "end_turn"
    # At max_tokens a held-back prefix ("brown" could start "brown cow") is flushed too.
    cut = await client.messages.create(
        model=MODEL, max_tokens=3, messages=user(PROMPT), stop_sequences=["brown cow"]
    )
    assert (text_of(cut), cut.stop_reason) == ("The quick brown", "max_tokens")


async def test_system_prompt_is_accepted_as_string_or_blocks(
    client: anthropic.AsyncAnthropic,
) -> None:
    bare = await client.messages.count_tokens(model=MODEL, messages=user(PROMPT))
    as_string = await client.messages.count_tokens(
        model=MODEL, system="You are terse.", messages=user(PROMPT)
    )
    as_blocks = await client.messages.count_tokens(
        model=MODEL, system=[{"type": "text", "text": "You are terse."}], messages=user(PROMPT)
    )
    assert as_string.input_tokens == as_blocks.input_tokens > bare.input_tokens
    message = await client.messages.create(
        model=MODEL, max_tokens=100, system="You are terse.", messages=user(PROMPT)
    )
    assert message.usage.input_tokens == as_string.input_tokens
    assert text_of(message) == PROMPT


async def test_multi_turn_answers_the_last_user_turn(client: anthropic.AsyncAnthropic) -> None:
    messages: list[MessageParam] = [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"},
                                     {"type": "text", "text": " question"}]},
    ]
    message = await client.messages.create(model=MODEL, max_tokens=100, messages=messages)
    assert text_of(message) == "second question"
    single = await client.messages.count_tokens(model=MODEL, messages=user("second question"))
    assert message.usage.input_tokens > single.input_tokens


async def test_final_assistant_turn_is_a_prefill(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=100,
        messages=[*user(PROMPT), {"role": "assistant", "content": "The quick brown"}],
    )
    # The answer continues the prefill and does not repeat it.
    assert text_of(message) == " fox jumps over the lazy dog."
    assert message.usage.output_tokens == 7


async def test_output_tokens_are_never_zero(client: anthropic.AsyncAnthropic) -> None:
    # The prefill already says everything: the answer is empty but still costs a token.
    params: dict[str, Any] = {
        "model": MODEL, "max_tokens": 100,
        "messages": [*user("done"), {"role": "assistant", "content": "done"}],
    }
    message = await client.messages.create(**params)
    assert text_of(message) == ""
    assert message.usage.output_tokens >= 1
    async with client.messages.stream(**params) as stream:
        final = await stream.get_final_message()
    assert final.usage.output_tokens >= 1
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("temperature", [0.0, 0.5, 1.0])
async def test_temperature_in_range_is_accepted(
    client: anthropic.AsyncAnthropic, temperature: float
) -> None:
    # This SDK has no ``temperature`` argument any more; the API still takes the field.
    message = await client.messages.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT),
        extra_body={"temperature": temperature},
    )
    assert text_of(message) == PROMPT


@pytest.mark.parametrize("temperature", [-0.1, 1.01, 2])
async def test_temperature_out_of_range_is_rejected(
    client: anthropic.AsyncAnthropic, temperature: float
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=user(PROMPT),
            extra_body={"temperature": temperature},
        )
    assert info.value.type == "invalid_request_error"
    assert info.value.api_message is not None
    assert info.value.api_message.startswith("temperature:")


async def test_count_tokens_grows_with_the_conversation(
    client: anthropic.AsyncAnthropic,
) -> None:
    short = await client.messages.count_tokens(model=MODEL, messages=user("hello"))
    long = await client.messages.count_tokens(model=MODEL, messages=user("hello" + " hello" * 49))
    assert 0 < short.input_tokens < long.input_tokens
    assert long.input_tokens - short.input_tokens == 49


async def test_count_tokens_validates_its_body(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post(
            "/v1/messages/count_tokens", body={"model": MODEL},
            cast_to=anthropic.types.MessageTokensCount,
        )
    assert info.value.api_message == "messages: Field required"
