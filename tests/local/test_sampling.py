"""Sampling fields and API versions from both generations of clients: SDK 2.x (no
``temperature``/``top_p``/``top_k`` arguments: they go through ``extra_body``;
``anthropic-version: 2026-10-21``) and older ones (body fields, ``2023-06-01``), the
latter sent here as raw HTTP the way they send it."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pytest
from anthropic.types import Message

from laneway.local import RunningLocal
from laneway.local.engines import SamplingParams

from .helpers import MODEL, PROMPT, RecordingEngine, text_of, user

SAMPLING = {"temperature": 0.25, "top_p": 0.9, "top_k": 40}


def _sent(engine: RecordingEngine) -> tuple[float, float | None, int | None]:
    params: SamplingParams = engine.sampling[-1]
    return params.temperature, params.top_p, params.top_k


async def test_sdk_2_sends_sampling_through_extra_body(
    recording: tuple[RunningLocal, RecordingEngine], recording_client: anthropic.AsyncAnthropic,
) -> None:
    raw = await recording_client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT), extra_body=SAMPLING)
    assert raw.http_request.headers["anthropic-version"] == "2026-10-21"
    assert text_of(await raw.parse()) == PROMPT
    assert _sent(recording[1]) == (0.25, 0.9, 40)

    async with recording_client.messages.stream(
        model=MODEL, max_tokens=100, messages=user(PROMPT), extra_body={"temperature": 0}
    ) as stream:
        assert text_of(await stream.get_final_message()) == PROMPT
    assert _sent(recording[1]) == (0.0, None, None)


async def test_an_older_client_sends_body_fields_with_version_2023_06_01(
    recording: tuple[RunningLocal, RecordingEngine],
) -> None:
    running, engine = recording
    headers = {"x-api-key": "k", "anthropic-version": "2023-06-01",
               "content-type": "application/json"}
    body = {"model": MODEL, "max_tokens": 100, "messages": user(PROMPT), **SAMPLING}
    async with httpx.AsyncClient(base_url=running.base_url, headers=headers) as http:
        plain = await http.post("/v1/messages", content=json.dumps(body))
        assert plain.status_code == 200, plain.text
        assert text_of(Message.model_validate(plain.json())) == PROMPT
        assert _sent(engine) == (0.25, 0.9, 40)

        streamed = await http.post("/v1/messages", json={**body, "stream": True,
                                                         "temperature": 0.5})
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        assert "event: message_stop" in streamed.text
        assert _sent(engine) == (0.5, 0.9, 40)


@pytest.mark.parametrize(("field", "value"), [("temperature", 1.5), ("top_p", -0.1),
                                              ("top_k", "many")])
async def test_bad_sampling_is_refused_either_way(
    recording: tuple[RunningLocal, RecordingEngine], recording_client: anthropic.AsyncAnthropic,
    field: str, value: Any,
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await recording_client.messages.create(
            model=MODEL, max_tokens=10, messages=user("hi"), extra_body={field: value})
    assert (info.value.api_message or "").startswith(f"{field}:")
    async with httpx.AsyncClient(base_url=recording[0].base_url) as http:
        answer = await http.post("/v1/messages", headers={"anthropic-version": "2023-06-01"},
                                 json={"model": MODEL, "max_tokens": 10,
                                       "messages": user("hi"), field: value})
    assert answer.status_code == 400
    assert answer.json()["error"]["message"].startswith(f"{field}:")
    assert recording[1].sampling == []  # nothing reached the engine


@pytest.mark.parametrize("version", ["2023-01-01", "2023-06-01", "2026-10-21"])
async def test_every_dated_version_is_accepted(
    client: anthropic.AsyncAnthropic, version: str
) -> None:
    message = await client.messages.create(
        model=MODEL, max_tokens=10, messages=user("hi"),
        extra_headers={"anthropic-version": version})
    assert text_of(message) == "hi"


@pytest.mark.parametrize("version", ["latest", "2023-13-01", "1999-01-01", ""])
async def test_a_malformed_version_is_a_bad_request_naming_the_header(
    client: anthropic.AsyncAnthropic, version: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=user("hi"),
            extra_headers={"anthropic-version": version})
    assert info.value.type == "invalid_request_error"
    assert (info.value.api_message or "").startswith("anthropic-version:")
