"""Every error the API documents, as the official SDK raises it, with its request id."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import EchoEngine, Prompt

from .helpers import MODEL, PROMPT, text_of, user

GOOD: dict[str, Any] = {"model": MODEL, "max_tokens": 10, "messages": user("hi")}


def assert_error_body(err: anthropic.APIStatusError, status: int, error_type: str) -> None:
    """The status, the error body's shape, and ``request-id`` equal to the body's id."""
    assert err.status_code == status
    body = err.body
    assert isinstance(body, dict)
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type == err.type
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert body["request_id"].startswith("req_")
    assert err.response.headers["request-id"] == body["request_id"] == err.request_id


@pytest.mark.parametrize(
    ("fault", "error_class", "status", "error_type"),
    [
        ("529", anthropic.OverloadedError, 529, "overloaded_error"),
        ("500", anthropic.InternalServerError, 500, "api_error"),
        ("429", anthropic.RateLimitError, 429, "rate_limit_error"),
    ],
)
async def test_injected_faults_raise_the_sdk_class(
    client: anthropic.AsyncAnthropic, fault: str, error_class: type[anthropic.APIStatusError],
    status: int, error_type: str,
) -> None:
    with pytest.raises(anthropic.APIStatusError) as info:
        await client.messages.create(**GOOD, extra_headers={"x-laneway-fault": fault})
    assert type(info.value) is error_class
    assert_error_body(info.value, status, error_type)


@pytest.mark.local_config(fault_retry_after_s=7)
@pytest.mark.parametrize(("fault", "retry_after"), [("429", "7"), ("429:90", "90")])
async def test_injected_429_carries_retry_after(
    client: anthropic.AsyncAnthropic, fault: str, retry_after: str
) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(**GOOD, extra_headers={"x-laneway-fault": fault})
    assert info.value.response.headers["retry-after"] == retry_after
    assert_error_body(info.value, 429, "rate_limit_error")


async def test_midstream_fault_on_a_plain_request_is_overloaded(
    client: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        await client.messages.create(**GOOD, extra_headers={"x-laneway-fault": "midstream"})
    assert_error_body(info.value, 529, "overloaded_error")


async def test_unknown_fault_header_is_ignored(client: anthropic.AsyncAnthropic) -> None:
    message = await client.messages.create(**GOOD, extra_headers={"x-laneway-fault": "nope"})
    assert text_of(message) == "hi"


@pytest.mark.parametrize(
    "raw", [b'{"model": ', b"not json at all", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000],
    ids=["truncated", "text", "not utf-8", "nested too deep"],
)
async def test_malformed_json_is_a_bad_request(
    client: anthropic.AsyncAnthropic, raw: bytes
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", content=raw, cast_to=Message,
                          options={"headers": {"content-type": "application/json"}})
    assert_error_body(info.value, 400, "invalid_request_error")
    assert info.value.api_message is not None
    assert "pars" in info.value.api_message  # "There was an error parsing the body"


@pytest.mark.parametrize("body", [[], "a string", 3])
async def test_a_body_that_is_not_an_object_is_a_bad_request(
    client: anthropic.AsyncAnthropic, body: object
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", content=json.dumps(body).encode(), cast_to=Message,
                          options={"headers": {"content-type": "application/json"}})
    assert_error_body(info.value, 400, "invalid_request_error")


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


FIELD_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no model", _without("model"), "model: Field required"),
    ("no max_tokens", _without("max_tokens"), "max_tokens: Field required"),
    ("no messages", _without("messages"), "messages: Field required"),
    ("max_tokens -1", {**GOOD, "max_tokens": -1}, "max_tokens:"),
    ("max_tokens text", {**GOOD, "max_tokens": "ten"}, "max_tokens:"),
    ("empty messages", {**GOOD, "messages": []}, "messages:"),
    ("bad role", {**GOOD, "messages": [{"role": "tool", "content": "hi"}]},
     "messages.0.role:"),
    ("no content", {**GOOD, "messages": [{"role": "user"}]}, "messages.0.content: Field"),
    ("text block without text",
     {**GOOD, "messages": [{"role": "user", "content": "a"},
                           {"role": "assistant", "content": [{"type": "text"}]}]},
     "messages.1.content.0.text:"),
    ("stop_sequences not a list", {**GOOD, "stop_sequences": "STOP"}, "stop_sequences:"),
    ("blank stop sequence", {**GOOD, "stop_sequences": ["  "]}, "stop_sequences:"),
    ("top_p", {**GOOD, "top_p": 1.5}, "top_p:"),
    ("top_k", {**GOOD, "top_k": -1}, "top_k:"),
    ("stream", {**GOOD, "stream": "yes"}, "stream:"),
    ("system", {**GOOD, "system": 5}, "system:"),
    ("metadata", {**GOOD, "metadata": "user-1"}, "metadata:"),
]


@pytest.mark.parametrize(("body", "expected"), [(b, e) for _, b, e in FIELD_CASES],
                         ids=[name for name, _, _ in FIELD_CASES])
async def test_invalid_fields_are_named_in_the_message(
    client: anthropic.AsyncAnthropic, body: dict[str, Any], expected: str
) -> None:
    # ``client.post`` sends the body as given: the typed ``create`` would refuse it first.
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages", body=body, cast_to=Message)
    assert_error_body(info.value, 400, "invalid_request_error")
    assert info.value.api_message is not None
    assert info.value.api_message.startswith(expected)


@pytest.mark.local_config(api_key="k")
async def test_wrong_api_key_is_an_authentication_error(
    client: anthropic.AsyncAnthropic,  # carries the key "test-key"
) -> None:
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client.messages.create(**GOOD)
    assert_error_body(info.value, 401, "authentication_error")
    with pytest.raises(anthropic.AuthenticationError):
        await client.messages.batches.list()
    with pytest.raises(anthropic.AuthenticationError):
        await client.messages.count_tokens(model=MODEL, messages=user("hi"))


@pytest.mark.local_config(api_key="k")
async def test_right_api_key_as_header_or_bearer_token(local_api: RunningLocal) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=local_api.base_url, api_key="k", max_retries=0
    ) as by_header:
        message = await by_header.messages.create(**GOOD)
        assert text_of(message) == "hi"
    async with anthropic.AsyncAnthropic(
        base_url=local_api.base_url, api_key=None, auth_token="k", max_retries=0
    ) as by_bearer:
        message = await by_bearer.messages.create(**GOOD)
        assert text_of(message) == "hi"
    async with anthropic.AsyncAnthropic(
        base_url=local_api.base_url, api_key=None, auth_token="wrong", max_retries=0
    ) as wrong_bearer:
        with pytest.raises(anthropic.AuthenticationError):
            await wrong_bearer.messages.create(**GOOD)


async def test_unknown_route_is_not_found(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.get("/v1/no-such-thing", cast_to=httpx2.Response)
    assert_error_body(info.value, 404, "not_found_error")
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.post("/v1/messages/nope", body=GOOD, cast_to=Message)
    assert_error_body(info.value, 404, "not_found_error")


async def test_unknown_batch_is_not_found(client: anthropic.AsyncAnthropic) -> None:
    missing = "msgbatch_01DoesNotExist"
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.messages.batches.retrieve(missing)
    assert_error_body(info.value, 404, "not_found_error")
    assert missing in (info.value.api_message or "")
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.cancel(missing)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.delete(missing)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.results(missing)


async def test_body_over_32_mb_is_request_too_large(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RequestTooLargeError) as info:
        await client.messages.create(
            model=MODEL, max_tokens=5, messages=user("x" * (32 * 1024 * 1024 + 1))
        )
    assert type(info.value) is anthropic.ContentTooLargeError
    assert_error_body(info.value, 413, "request_too_large")
    # The server is fine afterwards.
    message = await client.messages.create(**GOOD)
    assert text_of(message) == "hi"


async def test_body_over_32_mb_without_content_length(client: anthropic.AsyncAnthropic) -> None:
    """A chunked body is measured as it arrives."""
    chunk = b" " * (1024 * 1024)

    async def body() -> Any:
        yield b'{"model": "m", "max_tokens": 5, "messages": []'
        for _ in range(33):
            yield chunk
        yield b"}"

    with pytest.raises(anthropic.RequestTooLargeError) as info:
        await client.post("/v1/messages", content=body(), cast_to=Message,
                          options={"headers": {"content-type": "application/json"}})
    assert_error_body(info.value, 413, "request_too_large")


async def test_dropped_connection_is_a_connection_error(
    client: anthropic.AsyncAnthropic, local_api: RunningLocal
) -> None:
    with pytest.raises(anthropic.APIConnectionError) as info:
        await client.messages.create(**GOOD, extra_headers={"x-laneway-fault": "drop"})
    assert not isinstance(info.value, anthropic.APITimeoutError)
    message = await client.messages.create(**GOOD)  # the next request is served
    assert text_of(message) == "hi"
    # The server's counters agree with what the client saw.
    assert local_api.api.stats == {"requests": 2, "ok": 1, "rate_limited": 0, "faults": 1,
                                   "thread_creates": 0, "thread_continues": 0}


async def test_successes_carry_a_request_id(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(**GOOD)
    assert raw.headers["request-id"].startswith("req_")
    assert (await raw.parse())._request_id == raw.headers["request-id"]
    counted = await client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=user(PROMPT))
    listed = await client.messages.batches.with_raw_response.list()
    ids = {raw.headers["request-id"], counted.headers["request-id"],
           listed.headers["request-id"]}
    assert len(ids) == 3 and all(i.startswith("req_") for i in ids)


@pytest.mark.parametrize("limit", ["abc", "0", "1001"])
async def test_bad_query_parameter_is_a_bad_request(
    client: anthropic.AsyncAnthropic, limit: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.get("/v1/messages/batches", cast_to=httpx2.Response,
                         options={"params": {"limit": limit}})
    assert_error_body(info.value, 400, "invalid_request_error")
    assert (info.value.api_message or "").startswith("limit:")


class _BrokenEngine(EchoEngine):
    """An engine with a bug: the server must still answer in the API's error format."""

    def count_tokens(self, prompt: Prompt) -> int:
        raise RuntimeError("engine bug")


async def test_an_unexpected_server_error_is_an_api_error() -> None:
    running = start_local(LocalConfig(), engine=_BrokenEngine())
    try:
        async with anthropic.AsyncAnthropic(
            base_url=running.base_url, api_key="k", max_retries=0
        ) as client:
            with pytest.raises(anthropic.InternalServerError) as info:
                await client.messages.create(**GOOD)
    finally:
        running.stop(wait=False)
    assert_error_body(info.value, 500, "api_error")
