"""The gateway's own answers and its patience with the upstream (issue 24, goals 7, 8).

An outage upstream is waited out inside the lane's wait limit; past it, and for every
answer the gateway makes itself, the client gets the API's error shape with a request
id (header = body) and words of the API's or laneway's, never a library's; an answer
the gateway already retried tells the SDK not to retry it again; ``count_tokens`` and
models are retried like messages; the time to first token is the first text the client
gets. Wait limits here are 1.5 to 3 s: the figures at full size are bench/gateway_answers.py's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anthropic
import httpx
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits
from laneway.server.gateway.exchange import Exchange

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
WAIT_S = 1.5


def gateway(local: RunningLocal, tmp_path: Path, wait_s: float = WAIT_S,
            **kwargs: Any) -> Served:
    return start_server(local, tmp_path / "l.db",
                        gateway=GatewaySettings(waits=WaitLimits(wait_s, wait_s)), **kwargs)


def recorded(served: Served) -> list[Exchange]:
    seen: list[Exchange] = []
    served.app.state.gateway.observers.append(seen.append)
    return seen


def sdk(served: Served, **kwargs: Any) -> anthropic.Anthropic:
    """The SDK as an app uses it: its own retries (2) on unless ``max_retries`` says."""
    return anthropic.Anthropic(base_url=served.base_url, api_key="k", **kwargs)


def own_answer(r: httpx.Response, status: int, error_type: str) -> dict[str, Any]:
    """An error answer of the API's shape whose request id is the header's."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert body["request_id"].startswith("req_")
    assert r.headers["request-id"] == body["request_id"]
    return body


def test_an_upstream_outage_is_waited_out(local_api: RunningLocal, tmp_path: Path) -> None:
    """The upstream is down (connection refused) for 0.8 s: a message, a stream,
    count_tokens and a models list sent meanwhile all wait it out (limit 2.5 s), the
    client's own retries off; count_tokens and models were a 502 at once."""
    served = gateway(local_api, tmp_path, 2.5)
    port = urlsplit(local_api.base_url).port
    local_api.stop()
    client = sdk(served, max_retries=0)

    def stream() -> str:
        with client.messages.stream(model=MODEL, max_tokens=5, messages=HI) as s:
            return s.get_final_text()

    calls: dict[str, Callable[[], Any]] = {
        "create": lambda: client.messages.create(
            model=MODEL, max_tokens=5, messages=HI).content[0].text,
        "stream": stream,
        "count_tokens": lambda: client.messages.count_tokens(
            model=MODEL, messages=HI).input_tokens,
        "models": lambda: len(client.models.list().data),
    }
    back: RunningLocal | None = None
    try:
        with ThreadPoolExecutor(len(calls)) as pool:
            futures = {name: pool.submit(call) for name, call in calls.items()}
            time.sleep(0.8)
            back = start_local(LocalConfig(), port=port or 0)
            answers = {name: f.result(timeout=15) for name, f in futures.items()}
    finally:
        served.stop()
        if back is not None:
            back.stop(wait=False)
    assert all(answers.values()), answers


@pytest.mark.parametrize("outage", ["refused", "dropped"])
def test_an_upstream_that_never_answers_is_one_502_at_the_wait_limit(
        local_api: RunningLocal, tmp_path: Path, outage: str) -> None:
    """No connection, or each one cut short (through the aiohttp transport ``laneway
    serve`` uses): tried until the wait limit itself (it was given up early), then one
    502 that says so in laneway's words (it was aiohttp's text), which the SDK, its own
    retries on, does not send again (it did, twice)."""
    served = gateway(local_api, tmp_path, production_client=True)
    seen = recorded(served)
    headers = {"x-laneway-fault": "drop"} if outage == "dropped" else {}
    if outage == "refused":
        local_api.stop()
    try:
        started = time.monotonic()
        with pytest.raises(anthropic.InternalServerError) as info:
            sdk(served).messages.create(model=MODEL, max_tokens=5, messages=HI,
                                        extra_headers=headers)
        took = time.monotonic() - started
        wait_for(lambda: len(seen) >= 1, timeout_s=3, what="the request's record")
    finally:
        served.stop()
    err = info.value
    assert err.status_code == 502 and err.type == "api_error"
    assert err.response.headers["x-should-retry"] == "false"
    assert err.body["request_id"] == err.response.headers["request-id"] == err.request_id
    what = {"refused": "it could not be reached, or closed the connection before answering",
            "dropped": "its connection dropped before the answer was complete"}[outage]
    assert err.api_message.startswith(f"the upstream API gave no answer: {what} (laneway "
                                      "tried ")
    assert err.api_message.endswith("the background lane's wait limit is 1.5 s)")
    assert not any(w in err.api_message for w in ("aiohttp", "httpx", "Error", "<", "payload"))
    assert WAIT_S <= took < WAIT_S + 1.5
    assert len(seen) == 1 and seen[0].status == 502
    if outage == "dropped":
        tries = local_api.api.stats["faults"]
        assert tries >= 3 and seen[0].upstream_errors == tries - 1
        assert f"tried {tries} times" in err.api_message


def test_a_persistent_529_reaches_the_sdk_once(local_api: RunningLocal,
                                               tmp_path: Path) -> None:
    """Overloaded on every try: the gateway's last answer is the upstream's, with
    ``x-should-retry: false``, so the SDK does not try it again (it did, twice: a
    persistent 529 took 72 s to reach an app)."""
    served = gateway(local_api, tmp_path)
    seen = recorded(served)
    try:
        with pytest.raises(anthropic.OverloadedError) as info:
            sdk(served).messages.create(model=MODEL, max_tokens=5, messages=HI,
                                        extra_headers={"x-laneway-fault": "529"})
        wait_for(lambda: len(seen) >= 1, timeout_s=3, what="the request's record")
    finally:
        served.stop()
    err = info.value
    assert err.response.headers["x-should-retry"] == "false"
    assert err.api_message == "Overloaded"
    assert err.body["request_id"] == err.response.headers["request-id"]  # the upstream's
    tries = local_api.api.stats["faults"]
    assert len(seen) == 1 and tries >= 2 and seen[0].upstream_errors == tries - 1


def test_count_tokens_is_retried_like_messages(local_api: RunningLocal,
                                               tmp_path: Path) -> None:
    """A 500 from upstream is tried again (it was relayed at once), and the last one
    comes back as it was, marked not to be retried."""
    served = gateway(local_api, tmp_path)
    try:
        with pytest.raises(anthropic.InternalServerError) as info:
            sdk(served, max_retries=0).messages.count_tokens(
                model=MODEL, messages=HI, extra_headers={"x-laneway-fault": "500"})
    finally:
        served.stop()
    assert info.value.status_code == 500
    assert info.value.api_message == "Internal server error"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert local_api.api.stats["faults"] >= 2


def test_the_gateways_own_answers_carry_their_request_id(served: Served) -> None:
    """Refusals, a batch not found, a query the framework cannot read (was FastAPI's
    422 in laneway's shape): the API's shape, a request id in the header and the body
    alike, each answer its own."""
    ids = set()
    message = {"model": MODEL, "max_tokens": 5, "messages": HI}
    with httpx.Client(base_url=served.base_url, headers=HEADERS, timeout=10) as http:
        answers = [
            (http.post("/v1/messages", content=b"{not json"), 400, "invalid_request_error"),
            (http.post("/v1/messages", json=message, headers={"laneway-lane": "fast"}),
             400, "invalid_request_error"),
            (http.post("/v1/messages/count_tokens", json=message,
                       headers={"laneway-lane": "fast"}), 400, "invalid_request_error"),
            (http.get("/v1/messages/batches/msgbatch_nope"), 404, "not_found_error"),
            (http.get("/v1/messages/batches", params={"limit": "0"}), 400,
             "invalid_request_error"),
            (http.get("/v1/messages/batches", params={"limit": "abc"}), 400,
             "invalid_request_error"),
        ]
        for r, status, error_type in answers:
            ids.add(own_answer(r, status, error_type)["request_id"])
        listed = http.get("/v1/messages/batches")
    assert answers[-1][0].json()["error"]["message"].startswith("limit: ")
    assert len(ids) == len(answers)
    assert listed.status_code == 200 and listed.headers["request-id"].startswith("req_")


@pytest.mark.local_config(ttft_ms=300)
def test_time_to_first_token_is_the_first_text_the_client_gets(served: Served) -> None:
    """The upstream sends message_start and content_block_start at once and its first
    text 300 ms later: the time to first token is the text's (it was 11 ms)."""
    seen = recorded(served)
    started = time.monotonic()
    with sdk(served, max_retries=0).messages.stream(model=MODEL, max_tokens=5,
                                                    messages=HI) as stream:
        first = None
        for _ in stream.text_stream:
            first = first or time.monotonic() - started
    wait_for(lambda: len(seen) == 1, timeout_s=3, what="the stream's record")
    ttft = seen[0].ttft_s
    assert first is not None and ttft is not None
    assert 0.25 <= ttft <= first + 0.01
