"""The gateway: the official SDK pointed at ``laneway serve`` gets what the upstream
(the local API) would give it, through the governor's lanes, without 429s."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from laneway.governor.buckets import RateLimits
from laneway.local import RunningLocal
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits

from .helpers import CountingEngine, Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]


def sdk(base_url: str, **kwargs: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="any", max_retries=0, **kwargs)


def test_message_through_the_gateway_is_the_upstreams(served: Served) -> None:
    direct = sdk(served.local.base_url).messages.with_raw_response.create(
        model=MODEL, max_tokens=20, messages=HI)
    relayed = sdk(served.base_url).messages.with_raw_response.create(
        model=MODEL, max_tokens=20, messages=HI)
    a, b = direct.parse(), relayed.parse()
    assert b.content == a.content and b.usage == a.usage and b.stop_reason == a.stop_reason
    assert relayed.headers["request-id"].startswith("req_")
    assert relayed.headers["request-id"] != direct.headers["request-id"]
    assert relayed.http_response.headers["content-type"] == "application/json"


def test_stream_is_relayed_event_by_event(served: Served) -> None:
    def events(base_url: str) -> list[tuple[str, str]]:
        with httpx.Client(base_url=base_url, timeout=10) as http:
            r = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 20,
                                                "messages": HI, "stream": True},
                          headers={"x-api-key": "k", "anthropic-version": "2023-06-01"})
            assert r.status_code == 200 and r.headers["content-type"].startswith(
                "text/event-stream")
            return [(e, d) for e, d in _sse(r.text)]

    direct, relayed = events(served.local.base_url), events(served.base_url)
    # Same events, same order, same payloads (ids aside: each request has its own).
    assert [e for e, _ in relayed] == [e for e, _ in direct]
    assert [d for e, d in relayed if e == "content_block_delta"] == \
        [d for e, d in direct if e == "content_block_delta"]
    with sdk(served.base_url).messages.stream(model=MODEL, max_tokens=20,
                                              messages=HI) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Say hello in five words." and final.usage.output_tokens == 6
    assert final.stop_reason == "end_turn"


def _sse(text: str) -> list[tuple[str, str]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        name = next((x[6:].strip() for x in lines if x.startswith("event:")), "")
        data = "\n".join(x[5:].strip() for x in lines if x.startswith("data:"))
        if name:
            out.append((name, data))
    return out


def test_request_errors_pass_through_as_they_are(served: Served) -> None:
    def error(base_url: str) -> tuple[int, Any]:
        with pytest.raises(anthropic.APIStatusError) as info:
            sdk(base_url).messages.create(model=MODEL, max_tokens=20, messages=HI,
                                          extra_body={"not_a_field": 1})
        return info.value.status_code, info.value.body

    status, body = error(served.base_url)
    direct_status, direct_body = error(served.local.base_url)
    assert status == direct_status == 400
    assert body["error"] == direct_body["error"] and body["type"] == "error"


def test_count_tokens_and_models_are_relayed(served: Served) -> None:
    via, direct = sdk(served.base_url), sdk(served.local.base_url)
    assert via.messages.count_tokens(model=MODEL, messages=HI).input_tokens == \
        direct.messages.count_tokens(model=MODEL, messages=HI).input_tokens > 0
    assert [m.id for m in via.models.list()] == [m.id for m in direct.models.list()]
    assert via.models.retrieve(MODEL).id == MODEL


def test_bad_lane_header_is_a_400(served: Served) -> None:
    with pytest.raises(anthropic.BadRequestError, match="laneway-lane"):
        sdk(served.base_url).messages.create(model=MODEL, max_tokens=5, messages=HI,
                                             extra_headers={"laneway-lane": "fast"})


async def at_once(served: Served, n: int) -> list[Any]:
    """``n`` small requests at once through the gateway, with the SDK's retries off:
    what each returned or raised."""
    async with anthropic.AsyncAnthropic(base_url=served.base_url, api_key="x",
                                        max_retries=0) as client:
        return await asyncio.gather(*(client.messages.create(
            model=MODEL, max_tokens=5, messages=[{"role": "user", "content": f"job {i}"}])
            for i in range(n)), return_exceptions=True)


@pytest.mark.local_config(rpm=120)
def test_a_spent_quota_queues_instead_of_429(local_api: RunningLocal, tmp_path: Path) -> None:
    """40 requests at once against rpm 120 (2 per second): the upstream refuses most of
    them at first (the gateway learns the limit from its headers); the client, with its
    retries off, sees none of that."""
    served = start_server(local_api, tmp_path / "l.db")
    try:
        results = asyncio.run(at_once(served, 40))
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert local_api.api.completions.completed == 40
    finally:
        served.stop()


@pytest.mark.local_config(rpm=50)
def test_from_a_drained_account_the_first_requests_see_no_429(
        local_api: RunningLocal, tmp_path: Path) -> None:
    """An account at its limit (rpm 50: 0.83 a second; 2 requests left): the gateway
    knows no limit yet. It sends one request, learns the limit from its headers, then
    paces; the old start sent 8 at once and all but 2 were refused (each pausing the
    background lane)."""
    served = start_server(local_api, tmp_path / "l.db")
    try:
        requests = local_api.api.limits.requests
        assert requests is not None
        requests.refill(local_api.api.limits.clock())
        requests.level = 2.0
        results = asyncio.run(at_once(served, 4))
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert local_api.api.stats["rate_limited"] == 0
        assert served.agent.governor.snapshot()[MODEL]["buckets"]["requests"]["limit"] == 50
    finally:
        served.stop()


def test_past_the_wait_limit_the_answer_is_429_with_retry_after(
        local_api: RunningLocal, tmp_path: Path) -> None:
    waits = GatewaySettings(waits=WaitLimits(interactive_s=0.3, background_s=0.3))
    served = start_server(local_api, tmp_path / "l.db", limits=RateLimits(rpm=1),
                          gateway=waits)
    try:
        client = sdk(served.base_url)
        first = client.messages.create(model=MODEL, max_tokens=5, messages=HI)
        assert first.content
        with pytest.raises(anthropic.RateLimitError) as info:
            client.messages.create(model=MODEL, max_tokens=5, messages=HI)
        assert int(info.value.response.headers["retry-after"]) >= 1
        assert info.value.body["error"]["type"] == "rate_limit_error"
        # It waited its limit already: an SDK that waited again would multiply it.
        assert info.value.response.headers["x-should-retry"] == "false"
        assert info.value.body["request_id"] == info.value.response.headers["request-id"]
        assert local_api.api.completions.completed == 1  # the refused one was never sent
    finally:
        served.stop()


def test_a_queued_request_whose_client_left_is_never_sent(
        local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", limits=RateLimits(rpm=1))
    try:
        sdk(served.base_url).messages.create(model=MODEL, max_tokens=5, messages=HI)
        with pytest.raises(anthropic.APITimeoutError):
            sdk(served.base_url, timeout=0.5).messages.create(
                model=MODEL, max_tokens=5, messages=HI)
        governor = served.agent.governor
        wait_for(lambda: not governor.state(MODEL).waiting["background"], timeout_s=3,
                 what="the queued request to leave the queue")
        time.sleep(0.2)
        assert local_api.api.completions.completed == 1
    finally:
        served.stop()


@pytest.mark.local_config(token_ms=25)
def test_a_client_leaving_a_stream_cancels_it_upstream(served: Served) -> None:
    engine = CountingEngine(served.local.api.engine)
    served.local.api.engine = engine
    with sdk(served.base_url).messages.stream(
            model=MODEL, max_tokens=400, messages=HI) as stream:
        for i, _ in enumerate(stream.text_stream):
            if i == 3:
                break
    wait_for(lambda: engine.cut == 1, timeout_s=3, what="the upstream request to end")
    assert engine.finished == 0 and engine.tokens < 100
    wait_for(lambda: served.agent.governor.state(MODEL).in_flight["interactive"] == 0,
             timeout_s=3, what="the permit to come back")


def test_a_gateway_that_is_its_own_upstream_is_refused(served: Served) -> None:
    """Two hops through the same gateway (its upstream leads back to it) is a 508, and
    ``laneway serve`` refuses to start with ANTHROPIC_BASE_URL set to its own address."""
    from laneway.errors import ConfigError
    from laneway.server.gateway.loop import INSTANCE, check_upstream

    with httpx.Client(base_url=served.base_url, timeout=10) as http:
        r = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": HI},
                      headers={"laneway-via": f"other, {INSTANCE}"})
        assert r.status_code == 508 and r.json()["error"]["type"] == "api_error"
        assert r.json()["request_id"] == r.headers["request-id"]
        ok = http.post("/v1/messages", json={"model": MODEL, "max_tokens": 5, "messages": HI},
                       headers={"laneway-via": "other"})
        assert ok.status_code == 200
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANTHROPIC_BASE_URL", "http://localhost:8123/")
        with pytest.raises(ConfigError, match="this server itself"):
            check_upstream("127.0.0.1", 8123)
        check_upstream("127.0.0.1", 8124)


def _absorbed(served: Served, *, streamed: bool) -> None:
    seen: list[Any] = []
    served.app.state.gateway.observers.append(seen.append)
    client = sdk(served.base_url)
    for i in range(10):
        msgs = [{"role": "user", "content": f"request {i}"}]
        if streamed:
            with client.messages.stream(model=MODEL, max_tokens=8, messages=msgs) as s:
                assert s.get_final_message().content[0].text == f"request {i}"
        else:
            assert client.messages.create(model=MODEL, max_tokens=8,
                                          messages=msgs).content[0].text == f"request {i}"
    assert len(seen) == 10 and all(ex.status == 200 for ex in seen)
    assert sum(ex.upstream_errors for ex in seen) >= 3


@pytest.mark.local_config(faults="529=0.2,500=0.1,drop=0.1,429=0.1", fault_retry_after_s=1,
                          seed=3)
def test_upstream_errors_are_absorbed_for_the_client(served: Served) -> None:
    """529s, 500s, 429s and dropped connections from upstream: a client with its own
    retries off sees none of them; the exchanges say how many were absorbed."""
    _absorbed(served, streamed=False)


@pytest.mark.local_config(faults="529=0.2,500=0.2,429=0.1", fault_retry_after_s=1, seed=3)
def test_errors_before_a_stream_starts_are_absorbed_too(served: Served) -> None:
    """Before its first event a stream can be tried again (after it, an upstream error
    reaches the client as the API's own ``error`` event: nothing can be taken back)."""
    _absorbed(served, streamed=True)


@pytest.mark.local_config(faults="drop=1.0", token_ms=5)
def test_a_stream_dropped_upstream_ends_with_the_apis_error_event(served: Served) -> None:
    msgs: Any = [{"role": "user", "content": LONG}]
    with pytest.raises(anthropic.APIStatusError, match="dropped mid-stream") as info, \
            sdk(served.base_url).messages.stream(model=MODEL, max_tokens=50,
                                                 messages=msgs) as s:
        for _ in s.text_stream:
            pass
    assert info.value.body["error"]["type"] == "api_error"


LONG = " ".join(f"word{i}" for i in range(40))


@pytest.mark.local_config(token_ms=50)
def test_a_client_leaving_a_plain_request_gives_its_permit_back(served: Served) -> None:
    """The upstream request is closed with the client's (whether the upstream then stops
    generating is its own affair: the local API finishes a plain request anyway)."""
    seen: list[Any] = []
    served.app.state.gateway.observers.append(seen.append)
    msgs: Any = [{"role": "user", "content": LONG}]
    with pytest.raises(anthropic.APITimeoutError):
        sdk(served.base_url, timeout=0.3).messages.create(model=MODEL, max_tokens=40,
                                                          messages=msgs)
    wait_for(lambda: len(seen) == 1, timeout_s=3, what="the request to end")
    assert seen[0].status == 499 and seen[0].duration_s < 1.5  # not the whole 2 s answer
    assert served.agent.governor.state(MODEL).in_flight["background"] == 0
