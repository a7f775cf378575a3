"""The official Python SDK's errors through the gateway: a request's own fault comes back
as the upstream gave it (status, body, the SDK's exception class); the upstream's
overloads and failures are tried again inside the wait limit, and past it the client
gets the upstream's last answer as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from laneway.local import RunningLocal
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits
from laneway.server.gateway.exchange import Exchange

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}


def sdk(base_url: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)


def failure(base_url: str, call: Callable[[anthropic.Anthropic], Any]) -> Any:
    with pytest.raises(anthropic.APIStatusError) as info:
        call(sdk(base_url))
    return info.value


def same_error(direct: Any, relayed: Any) -> None:
    """The same answer, less the request id each answer has of its own; the relayed
    body's request id is the one in the relayed headers (the upstream's, as it was)."""
    assert type(relayed) is type(direct)
    assert relayed.status_code == direct.status_code
    assert relayed.type == direct.type and relayed.api_message == direct.api_message
    body, direct_body = dict(relayed.body), dict(direct.body)
    assert body.pop("request_id") == relayed.request_id == relayed.response.headers[
        "request-id"]
    direct_body.pop("request_id")
    assert body == direct_body and body["type"] == "error"


def both(served: Served, call: Callable[[anthropic.Anthropic], Any]) -> tuple[Any, Any]:
    return failure(served.local.base_url, call), failure(served.base_url, call)


BAD_REQUESTS: dict[str, dict[str, Any]] = {
    "an unknown field": {"messages": HI, "extra_body": {"not_a_field": 1}},
    "no messages": {"messages": []},
    "a bad role": {"messages": [{"role": "robot", "content": "hi"}]},
    "max_tokens not a number": {"messages": HI, "extra_body": {"max_tokens": "many"}},
}


@pytest.mark.parametrize("kwargs", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_a_bad_request_is_the_upstreams_400(served: Served, kwargs: dict[str, Any]) -> None:
    direct, relayed = both(served, lambda c: c.messages.create(
        model=MODEL, max_tokens=20, **kwargs))
    same_error(direct, relayed)
    assert isinstance(relayed, anthropic.BadRequestError)
    assert relayed.type == "invalid_request_error"


@pytest.mark.parametrize("stream", [False, True])
def test_a_missing_max_tokens_is_the_upstreams_400(served: Served, stream: bool) -> None:
    """The SDK will not send a request without max_tokens: sent raw."""
    body = {"model": MODEL, "messages": HI, "stream": stream}
    answers = []
    for base_url in (served.local.base_url, served.base_url):
        with httpx.Client(base_url=base_url, timeout=10) as http:
            answers.append(http.post("/v1/messages", json=body, headers=HEADERS))
    direct, relayed = answers
    assert relayed.status_code == direct.status_code == 400
    assert relayed.headers["content-type"] == direct.headers["content-type"]
    a, b = direct.json(), relayed.json()
    assert b.pop("request_id") == relayed.headers["request-id"]
    a.pop("request_id")
    assert b == a and "max_tokens" in b["error"]["message"]


def test_bad_count_tokens_and_unknown_model_are_the_upstreams(served: Served) -> None:
    direct, relayed = both(served, lambda c: c.messages.count_tokens(model=MODEL,
                                                                     messages=[]))
    same_error(direct, relayed)
    assert isinstance(relayed, anthropic.BadRequestError)
    direct, relayed = both(served, lambda c: c.models.retrieve("claude-no-such-model"))
    same_error(direct, relayed)
    assert isinstance(relayed, anthropic.NotFoundError) and relayed.status_code == 404


def test_a_body_over_32_mb_is_a_413_in_the_apis_shape(served: Served) -> None:
    """Over the API's 32 MB (and the local API's 32 MiB): the gateway answers at once,
    before reading the body, and the upstream never sees it."""
    big = [{"role": "user", "content": "x" * 34_000_000}]
    for call in (lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=big),
                 lambda c: c.messages.count_tokens(model=MODEL, messages=big)):
        direct, relayed = both(served, call)
        assert type(relayed) is type(direct) is anthropic.ContentTooLargeError
        assert relayed.status_code == direct.status_code == 413
        assert relayed.type == direct.type == "request_too_large"
        assert relayed.body["type"] == direct.body["type"] == "error"
        assert set(relayed.body) <= set(direct.body)
    # Chunked (no content-length): refused as soon as the count passes the limit.
    answers = []
    for base_url in (served.local.base_url, served.base_url):
        with httpx.Client(base_url=base_url, timeout=30) as http:
            chunks = (b"x" * 1_000_000 for _ in range(34))
            answers.append(http.post("/v1/messages", content=chunks, headers=HEADERS))
    assert [a.status_code for a in answers] == [413, 413]
    assert [a.json()["type"] for a in answers] == ["error", "error"]
    assert [a.json()["error"]["type"] for a in answers] == ["request_too_large"] * 2
    assert served.local.api.stats["requests"] == 0


def _recorded(served: Served) -> list[Exchange]:
    seen: list[Exchange] = []
    served.app.state.gateway.observers.append(seen.append)
    return seen


@pytest.fixture
def short_wait(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """A gateway whose requests may wait 2 s (room for one or two retries: the first
    backs off 0.5 to 1 s, the second 1 to 2 s)."""
    served = start_server(local_api, tmp_path / "l.db",
                          gateway=GatewaySettings(waits=WaitLimits(2.0, 2.0)))
    try:
        yield served
    finally:
        served.stop()


UPSTREAM_FAILURES = {
    "529": ("overloaded_error", anthropic.OverloadedError),
    "500": ("api_error", anthropic.InternalServerError),
}


@pytest.mark.parametrize("fault", [
    pytest.param(kind, marks=pytest.mark.local_config(faults=f"{kind}=1.0"))
    for kind in UPSTREAM_FAILURES])
@pytest.mark.parametrize("stream", [False, True])
def test_past_the_wait_limit_the_upstreams_failure_comes_back_as_it_was(
        local_api: RunningLocal, short_wait: Served, fault: str, stream: bool) -> None:
    seen = _recorded(short_wait)

    def call(c: anthropic.Anthropic) -> Any:
        if not stream:
            return c.messages.create(model=MODEL, max_tokens=5, messages=HI)
        with c.messages.stream(model=MODEL, max_tokens=5, messages=HI) as s:
            return s.get_final_message()

    direct = failure(local_api.base_url, call)
    before = local_api.api.stats["faults"]
    relayed = failure(short_wait.base_url, call)
    same_error(direct, relayed)
    error_type, error_class = UPSTREAM_FAILURES[fault]
    assert type(relayed) is error_class and relayed.status_code == int(fault)
    assert relayed.type == error_type
    tries = local_api.api.stats["faults"] - before
    assert tries >= 2  # tried again inside the limit before giving up
    wait_for(lambda: len(seen) == 1, timeout_s=3, what="the request's record")
    assert seen[0].status == int(fault) and seen[0].upstream_errors == tries - 1


@pytest.mark.local_config(faults="529=0.3,500=0.2", seed=7)
def test_upstream_failures_are_absorbed(local_api: RunningLocal, served: Served) -> None:
    """Half the upstream's answers fail: the client, its retries off, sees none."""
    seen = _recorded(served)
    client = sdk(served.base_url)
    texts = []
    for i in range(6):
        content = [{"role": "user", "content": f"job number {i}"}]
        if i % 2:
            with client.messages.stream(model=MODEL, max_tokens=10,
                                        messages=content) as stream:
                texts.append(stream.get_final_text())
        else:
            texts.append(client.messages.create(model=MODEL, max_tokens=10,
                                                messages=content).content[0].text)
    assert texts == [f"job number {i}" for i in range(6)]
    stats = local_api.api.stats
    assert stats["ok"] == 6 and stats["faults"] >= 2
    assert stats["requests"] == 6 + stats["faults"]
    wait_for(lambda: len(seen) == 6, timeout_s=3, what="every request's record")
    assert [x.status for x in seen] == [200] * 6
    assert sum(x.upstream_errors for x in seen) == stats["faults"]


@pytest.mark.local_config(faults="drop=0.5", seed=3)
def test_an_answer_cut_short_is_tried_again(local_api: RunningLocal, served: Served) -> None:
    """The upstream drops half its connections mid-body: straight to it the SDK raises
    a connection error; through the gateway every answer is whole."""
    with pytest.raises(anthropic.APIConnectionError):
        for i in range(10):  # the first drop the sequence holds
            sdk(local_api.base_url).messages.create(model=MODEL, max_tokens=5, messages=[
                {"role": "user", "content": f"direct {i}"}])
    seen = _recorded(served)
    before = dict(local_api.api.stats)
    texts = [sdk(served.base_url).messages.create(model=MODEL, max_tokens=10, messages=[
        {"role": "user", "content": f"job number {i}"}]).content[0].text for i in range(6)]
    assert texts == [f"job number {i}" for i in range(6)]
    faults = local_api.api.stats["faults"] - before["faults"]
    assert faults >= 2 and local_api.api.stats["ok"] - before["ok"] == 6
    wait_for(lambda: len(seen) == 6, timeout_s=3, what="every request's record")
    assert sum(x.upstream_errors for x in seen) == faults


@pytest.mark.local_config(faults="drop=1.0")
def test_past_the_wait_limit_an_upstream_that_never_answers_is_a_502(
        local_api: RunningLocal, short_wait: Served) -> None:
    relayed = failure(short_wait.base_url, lambda c: c.messages.create(
        model=MODEL, max_tokens=5, messages=HI))
    assert type(relayed) is anthropic.InternalServerError and relayed.status_code == 502
    assert relayed.body["type"] == "error" and relayed.type == "api_error"
    assert "connection dropped" in relayed.api_message
    assert local_api.api.stats["faults"] >= 2


@pytest.mark.local_config(faults="midstream=1.0")
def test_an_error_event_mid_stream_is_the_upstreams(served: Served) -> None:
    """Once a stream has started nothing is tried again: the upstream's error event
    reaches the SDK as it was."""
    def call(c: anthropic.Anthropic) -> Any:
        with c.messages.stream(model=MODEL, max_tokens=20, messages=HI) as stream:
            return stream.get_final_message()

    direct, relayed = both(served, call)
    assert type(relayed) is type(direct) is anthropic.APIStatusError
    assert relayed.body == direct.body == {
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert served.local.api.stats["faults"] == 2
