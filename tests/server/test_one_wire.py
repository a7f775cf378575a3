"""One of each wire thing, the same on every route (issue 27).

One error body on every route that answers one: the local API, the gateway's own answers and relays, and ``laneway serve``'s
runs and chat routes all answer ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with the ``request-id`` header equal to the body's ``request_id``;
an errored batch result holds the same body; a stream's ``error`` event is that body
without ``request_id``, on the local API and the chat route alike.

One result-line encoder: a batch's results on the local API and through the gateway, and
a run's results from ``laneway serve``, are the same compact JSON lines, UTF-8 as it
is (no ``\\u`` escapes).

One body reader, one 413: a body over its route's limit gets the API's 413 in the same
words from the local API, the gateway, the runs routes and the chat route.

One usage fold: a stream's usage read by the gateway's tap (``SseTap``) and by the
provider's stream reader (``apply_event``) is the usage the SDK itself accumulates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.faults import Fault
from laneway.provider.stream import apply_event
from laneway.wire.batches import errored, result_line
from laneway.wire.sse import SseTap, error_event

from .helpers import FaultOnce, Served, parse_sse, start_server, wait_for

KEY = "k"
API = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
MSG = {"model": "claude-haiku-4-5", "max_tokens": 5,
       "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def local() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(api_key=KEY, engine="echo"))
    try:
        yield running
    finally:
        running.stop(wait=False)


@pytest.fixture(scope="module")
def served(local: RunningLocal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_server(local, tmp_path_factory.mktemp("errbody") / "ledger.db", kind="anthropic")
    try:
        yield s
    finally:
        s.stop()


def _the_one_body(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) == {"type", "error", "request_id"}, body
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message"}, body
    assert body["request_id"].startswith("req_")
    assert r.headers["request-id"] == body["request_id"]
    return body


def test_every_route_answers_the_one_error_body(served: Served) -> None:
    local = httpx.Client(base_url=served.local.base_url, timeout=10)
    own = served.client()
    answers = {
        "local API 400": (local.post("/v1/messages", json={}, headers=API), 400),
        "local API 401": (local.post("/v1/messages", json=MSG, headers={}), 401),
        "local API 404": (local.get("/v1/nothing", headers=API), 404),
        "gateway 401": (own.post("/v1/messages", json=MSG,
                                 headers={**API, "x-api-key": "lw_unknown"}), 401),
        "gateway relayed 400": (own.post("/v1/messages", json={"model": "x"},
                                         headers=API), 400),
        "runs 404": (own.get("/v1/runs/no-such-run"), 404),
        "runs 400": (own.post("/v1/runs", content=b'{"id": "x"}\n',
                              headers={"content-type": "application/x-ndjson"}), 400),
        "runs 415": (own.post("/v1/runs", content=b"{}",
                              headers={"content-type": "image/png"}), 415),
        "chat 422": (own.post("/v1/chat/stream", json={"nope": 1}), 422),
    }
    types = {name: _the_one_body(r, status)["error"]["type"]
             for name, (r, status) in answers.items()}
    assert types["gateway 401"] == types["local API 401"] == "authentication_error"
    assert types["runs 404"] == types["local API 404"] == "not_found_error"
    local.close()
    own.close()


def test_an_errored_result_and_a_stream_error_hold_the_same_body(served: Served) -> None:
    result = errored("overloaded_error", "Overloaded", "req_1")
    assert result == {"type": "errored", "error": {
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
        "request_id": "req_1"}}
    # The local API's own stream error event is the one encoder's, byte for byte.
    served.local.api.faults = FaultOnce(Fault("midstream"))
    with httpx.Client(base_url=served.local.base_url, timeout=10) as http:
        text = http.post("/v1/messages", json={**MSG, "stream": True}, headers=API).text
    assert text.replace("\r\n", "\n").endswith(
        error_event("overloaded_error", "Overloaded").decode())
    events = parse_sse(error_event("api_error", "x").decode().splitlines())
    assert events == [("error", {"type": "error",
                                 "error": {"type": "api_error", "message": "x"}})]


WORDS = "héllo wörld ✓ 日本"


def _results(base_url: str) -> bytes:
    client = anthropic.Anthropic(base_url=base_url, api_key=KEY, max_retries=0)
    batch = client.messages.batches.create(requests=[
        {"custom_id": "u", "params": {**MSG, "messages": [{"role": "user", "content": WORDS}]}}])
    wait_for(lambda: client.messages.batches.retrieve(batch.id).processing_status == "ended",
             timeout_s=20, what="the batch's end")
    with httpx.Client(timeout=10) as http:
        url = client.messages.batches.retrieve(batch.id).results_url
        assert url is not None
        return http.get(url, headers=API).content


def _is_one_encoders(raw: bytes) -> None:
    assert WORDS.encode() in raw and b"\\u" not in raw, raw
    for line in raw.decode().splitlines():
        decoded = json.loads(line)
        assert line == result_line(decoded["custom_id"], decoded["result"])


def test_results_are_the_one_encoders_lines(served: Served) -> None:
    _is_one_encoders(_results(served.local.base_url))
    _is_one_encoders(_results(served.base_url))
    with served.client() as http:
        line = json.dumps({"id": "u", "prompt": WORDS}, ensure_ascii=True).encode() + b"\n"
        r = http.post("/v1/runs?name=utf8", content=line,
                      headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 201, r.text
        wait_for(lambda: http.get("/v1/runs/utf8").json()["status"] == "done",
                 timeout_s=20, what="the run's end")
        _is_one_encoders(http.get("/v1/runs/utf8/results").content)


def test_a_streams_usage_is_folded_one_way(served: Served) -> None:
    params = {**MSG, "max_tokens": 12,
              "messages": [{"role": "user", "content": "one two three four five six"}]}
    client = anthropic.Anthropic(base_url=served.local.base_url, api_key=KEY, max_retries=0)
    with client.messages.stream(**params) as stream:  # type: ignore[arg-type]
        sdk_usage = stream.get_final_message().usage.model_dump(exclude_none=True)
    with httpx.Client(base_url=served.local.base_url, timeout=10) as http:
        raw = http.post("/v1/messages", json={**params, "stream": True}, headers=API).content
    tap = SseTap()
    for i in range(0, len(raw), 7):  # in small pieces, as a relay reads it
        tap.feed(raw[i:i + 7])
    message: dict[str, Any] = {}
    for name, data in parse_sse(raw.decode().splitlines()):
        apply_event(message, name, data)
    folded = {k: v for k, v in message["usage"].items() if v is not None}
    assert tap.usage == folded
    assert {k: v for k, v in folded.items() if k in sdk_usage} == \
        {k: v for k, v in sdk_usage.items() if k in folded}
    assert folded["output_tokens"] > 1 and folded["input_tokens"] > 0


def test_every_route_refuses_a_large_body_in_the_same_words(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each route's limit made 1,000 bytes (the servers run in this process), then a
    2,000-byte body sent to each, with its length declared and chunked."""
    for module in ("laneway.local.app", "laneway.server.gateway.pipeline"):
        monkeypatch.setattr(f"{module}.MESSAGES_MAX_BYTES", 1000)
    monkeypatch.setattr("laneway.server.runs_routes.MAX_UPLOAD_BYTES", 1000)
    monkeypatch.setattr("laneway.server.body_limit.JSON_LIMIT", 1000)
    big = json.dumps({**MSG, "metadata": {"user_id": "x" * 2000}}).encode()
    routes = {"local API": (served.local.base_url, "/v1/messages", API),
              "gateway": (served.base_url, "/v1/messages", API),
              "runs": (served.base_url, "/v1/runs", {"content-type": "application/x-ndjson"}),
              "chat": (served.base_url, "/v1/chat/stream", {})}
    for name, (base, path, headers) in routes.items():
        for content in (big, iter([big[:1500], big[1500:]])):
            with httpx.Client(base_url=base, timeout=10) as http:
                r = http.post(path, content=content, headers=headers)
            body = _the_one_body(r, 413)
            assert body["error"] == {"type": "request_too_large", "message": "Request "
                                     "exceeds the maximum allowed number of bytes (1000)"}, name
