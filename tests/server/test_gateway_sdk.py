"""The official Python SDK through the gateway: every call gets what the same call gets
straight from the upstream (the local API): same content, usage, stop reason and types,
streamed and not. Only what is new per request (message and tool-use ids, request ids,
the remaining quota) may differ."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local import server as local_server
from laneway.server.gateway.exchange import Exchange

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
WEATHER = {"name": "get_weather", "description": "The weather in a city.",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


def sdk(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="client-key", max_retries=0)


def both(served: Served, call: Callable[[anthropic.Anthropic], Any]) -> tuple[Any, Any]:
    """``call`` straight to the upstream, then through the gateway."""
    return call(sdk(served.local.base_url)), call(sdk(served.base_url))


def _same_ids(data: Any) -> Any:
    """``data`` with the ids each answer makes up anew (``msg_…``, ``toolu_…``) blanked."""
    if isinstance(data, dict):
        return {k: "<id>" if k == "id" and isinstance(v, str) and v.startswith(
            ("msg_", "toolu_")) else _same_ids(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_same_ids(x) for x in data]
    return data


def dump(model: Any) -> Any:
    return _same_ids(model.model_dump(mode="json"))


CREATE_CALLS: dict[str, dict[str, Any]] = {
    "plain": {"messages": HI},
    "system as a string": {"system": "Answer in French.", "messages": HI},
    "system as blocks": {"system": [{"type": "text", "text": "Answer in French."},
                                    {"type": "text", "text": "Be brief."}], "messages": HI},
    # SDK 2.x's SystemMessageParam: a system turn inside the conversation.
    "a system-role message": {"messages": [
        {"role": "user", "content": "Hello."}, {"role": "assistant", "content": "Hi."},
        {"role": "system", "content": "From now on, be brief."}, *HI]},
    "tools with a forced tool_choice": {
        "messages": [{"role": "user", "content": "The weather in Paris?"}],
        "tools": [WEATHER], "tool_choice": {"type": "tool", "name": "get_weather"}},
    # SDK 2.x has no ``temperature`` argument: a field it does not know goes in extra_body.
    "stop sequences, metadata, a field the SDK lacks": {
        "messages": HI, "stop_sequences": ["five"], "metadata": {"user_id": "u1"},
        "extra_body": {"temperature": 0.0}},
}


@pytest.mark.parametrize("kwargs", CREATE_CALLS.values(), ids=CREATE_CALLS.keys())
def test_messages_create_is_the_upstreams(served: Served, kwargs: dict[str, Any]) -> None:
    direct, relayed = both(served, lambda c: c.messages.create(
        model=MODEL, max_tokens=30, **kwargs))
    assert type(relayed) is type(direct) is anthropic.types.Message
    assert [type(b) for b in relayed.content] == [type(b) for b in direct.content]
    assert dump(relayed) == dump(direct)
    assert relayed.id != direct.id and relayed.id.startswith("msg_")
    if "tools" in kwargs:
        assert relayed.stop_reason == "tool_use"
        assert isinstance(relayed.content[0], anthropic.types.ToolUseBlock)
        assert relayed.content[0].name == "get_weather"


def test_stream_helpers_give_the_upstreams_events(served: Served) -> None:
    def streamed(client: anthropic.Anthropic) -> tuple[list[str], str, Any, str]:
        with client.messages.stream(model=MODEL, max_tokens=30, system="Be brief.",
                                    messages=HI) as stream:
            kinds, text = [], []
            for event in stream:
                kinds.append(event.type)
                if event.type == "text":
                    text.append(event.text)
            final = stream.get_final_message()
            return kinds, "".join(text), final, stream.get_final_text()

    (kinds, text, final, final_text), (r_kinds, r_text, r_final, r_final_text) = \
        both(served, streamed)
    assert r_kinds == kinds and "text" in kinds and kinds[-1] == "message_stop"
    assert r_text == text == r_final_text == final_text != ""
    assert type(r_final) is type(final) and isinstance(r_final, anthropic.types.Message)
    assert dump(r_final) == dump(final)
    with sdk(served.base_url).messages.stream(model=MODEL, max_tokens=30, system="Be brief.",
                                              messages=HI) as stream:
        assert "".join(stream.text_stream) == text
        assert stream.get_final_message().usage == final.usage


def test_raw_stream_events_are_the_upstreams(served: Served) -> None:
    def events(client: anthropic.Anthropic) -> list[tuple[type, Any]]:
        stream = client.messages.create(model=MODEL, max_tokens=30, messages=HI,
                                        stream=True)
        with stream:
            return [(type(event), dump(event)) for event in stream]

    direct, relayed = both(served, events)
    assert relayed == direct
    assert relayed[0][0] is anthropic.types.RawMessageStartEvent
    assert any(t is anthropic.types.RawContentBlockDeltaEvent for t, _ in relayed)


def test_count_tokens_is_the_upstreams(served: Served) -> None:
    direct, relayed = both(served, lambda c: c.messages.count_tokens(
        model=MODEL, system="Be brief.", messages=HI, tools=[WEATHER]))
    assert type(relayed) is anthropic.types.MessageTokensCount
    assert relayed.model_dump() == direct.model_dump() and relayed.input_tokens > 0


def test_models_list_and_retrieve_are_the_upstreams(served: Served) -> None:
    direct, relayed = both(served, lambda c: [m.model_dump() for m in c.models.list()])
    assert relayed == direct and len(relayed) > 1
    direct_page, relayed_page = both(served, lambda c: c.models.list(limit=2))
    assert [m.id for m in relayed_page.data] == [m.id for m in direct_page.data]
    assert relayed_page.has_more == direct_page.has_more is True
    after = relayed_page.data[-1].id
    direct, relayed = both(served, lambda c: [m.id for m in c.models.list(after_id=after)])
    assert relayed == direct and after not in relayed
    direct_one, relayed_one = both(served, lambda c: c.models.retrieve(MODEL))
    assert type(relayed_one) is anthropic.types.ModelInfo
    assert relayed_one.model_dump() == direct_one.model_dump()


@pytest.mark.local_config(rpm=1000, itpm=1_000_000, otpm=100_000)
def test_raw_response_headers_are_the_upstreams(served: Served) -> None:
    direct, relayed = both(served, lambda c: c.messages.with_raw_response.create(
        model=MODEL, max_tokens=10, messages=HI))
    limits = {k for k in direct.headers if k.startswith("anthropic-ratelimit-")}
    assert {"anthropic-ratelimit-requests-limit",
            "anthropic-ratelimit-input-tokens-limit"} <= limits
    assert {k for k in relayed.headers if k.startswith("anthropic-ratelimit-")} == limits
    for name in limits:
        if name.endswith("-limit"):
            assert relayed.headers[name] == direct.headers[name]
    assert relayed.headers["request-id"].startswith("req_")
    assert relayed.request_id == relayed.headers["request-id"] != direct.request_id
    assert dump(relayed.parse()) == dump(direct.parse())


class _Recorder:
    """ASGI middleware: the headers of every request the upstream receives."""

    def __init__(self, app: ASGIApp, seen: list[dict[str, str]]) -> None:
        self.app, self.seen = app, seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/v1/messages":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]}
                             | {":query": scope["query_string"].decode()})
        await self.app(scope, receive, send)


@pytest.fixture
def recording(monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Iterator[tuple[Served, list[dict[str, str]]]]:
    """A gateway whose upstream records the headers it receives."""
    seen: list[dict[str, str]] = []
    original = local_server.create_app

    def create_app(config: LocalConfig, **kwargs: Any) -> Any:
        app = original(config, **kwargs)
        app.add_middleware(_Recorder, seen=seen)
        return app

    monkeypatch.setattr(local_server, "create_app", create_app)
    local: RunningLocal = start_local(LocalConfig())
    served = start_server(local, tmp_path / "l.db")
    try:
        yield served, seen
    finally:
        served.stop()
        local.stop(wait=False)


def test_betas_version_and_query_pass_through_the_client_key_does_not(
        recording: tuple[Served, list[dict[str, str]]]) -> None:
    served, seen = recording
    betas = ["token-efficient-tools-2025-02-19", "a-beta-from-the-future-2031-01-01"]
    direct, relayed = both(served, lambda c: c.beta.messages.create(
        model=MODEL, max_tokens=20, messages=HI, betas=betas,
        extra_headers={"x-custom-header": "kept"}, extra_query={"beta": "true"}))
    assert type(relayed) is anthropic.types.beta.BetaMessage and dump(relayed) == dump(direct)
    straight, through = seen
    assert through["anthropic-beta"] == straight["anthropic-beta"] == ",".join(betas)
    assert through["anthropic-version"] == straight["anthropic-version"]
    assert through["x-custom-header"] == "kept"
    assert through[":query"] == straight[":query"] == "beta=true"
    # The gateway sends its own upstream key: the client's never leaves it.
    assert straight["authorization"] == "Bearer client-key"
    assert through["authorization"] == "Bearer k" and "x-api-key" not in through
    assert not any("client-key" in value for value in through.values())


def test_every_sdk_call_is_in_the_ledger_once(served: Served) -> None:
    seen: list[Exchange] = []
    served.app.state.gateway.observers.append(seen.append)
    client = sdk(served.base_url)
    client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
        final = stream.get_final_message()
    client.messages.count_tokens(model=MODEL, messages=HI)
    wait_for(lambda: len(seen) == 2, timeout_s=3, what="the stream's record")
    assert [(x.streamed, x.status, x.lane.value) for x in seen] == [
        (False, 200, "background"), (True, 200, "interactive")]
    assert seen[1].usage["output_tokens"] == final.usage.output_tokens
    assert seen[1].usage["input_tokens"] == final.usage.input_tokens
