"""POST /v1/chat/stream over a real HTTP connection (httpx -> uvicorn -> local API)."""

from __future__ import annotations

import time

import pytest

from laneway.local.faults import Fault

from .helpers import CountingEngine, FaultOnce, Served, parse_sse, wait_for

LONG = " ".join(f"token{i}" for i in range(80))


def stream(served: Served, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    with served.client() as http, http.stream("POST", "/v1/chat/stream", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        return parse_sse(list(r.iter_lines()))


@pytest.mark.local_config(token_ms=2)
def test_deltas_then_done_with_usage_cost_and_ttft(served: Served) -> None:
    events = stream(served, {"message": "the quick brown fox jumps"})
    *deltas, (name, done) = events
    assert name == "message" and done["done"] is True
    assert len(deltas) == 5 and all(n == "message" and set(d) == {"text"} for n, d in deltas)
    assert "".join(str(d["text"]) for _, d in deltas) == done["text"] == \
        "the quick brown fox jumps"
    usage = done["usage"]
    assert isinstance(usage, dict) and usage["output_tokens"] == 5 and usage["input_tokens"] > 0
    assert done["cost_usd"] == 0.0
    assert isinstance(done["ttft_ms"], float) and done["ttft_ms"] > 0
    assert done["stop_reason"] == "end_turn" and done["model"] == "claude-haiku-4-5"


def test_history_system_model_and_max_tokens_are_used(served: Served) -> None:
    plain = stream(served, {"message": "a b c d e f"})[-1][1]
    body = {"message": "a b c d e f", "system": "Be brief.", "model": "claude-sonnet-5",
            "max_tokens": 3,
            "history": [{"role": "user", "content": "earlier"},
                        {"role": "assistant", "content": "earlier"}]}
    done = stream(served, body)[-1][1]
    assert done["text"] == "a b c" and done["stop_reason"] == "max_tokens"
    assert done["model"] == "claude-sonnet-5"
    assert done["usage"]["input_tokens"] > plain["usage"]["input_tokens"]  # type: ignore[index]


def test_bad_request_is_a_json_error(served: Served) -> None:
    with served.client() as http:
        r = http.post("/v1/chat/stream", json={"message": ""})
        assert r.status_code == 422
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "message" in r.json()["error"]["message"]
        r = http.post("/v1/chat/stream", json={"message": "x", "history": [{"role": "bot",
                                                                            "content": "x"}]})
        assert r.status_code == 422


def test_rate_limited_before_any_text_is_a_429_with_retry_after(served: Served) -> None:
    # A 429 with a 90 s retry-after is not worth a person's wait: reported at once, as an
    # HTTP 429 carrying the wait (nothing was streamed yet), as the API itself answers.
    served.local.api.faults = FaultOnce(Fault("429", retry_after_s=90))
    with served.client() as http:
        r = http.post("/v1/chat/stream", json={"message": "hello"})
    assert r.status_code == 429
    assert r.headers["retry-after"] == "90"
    assert r.json() == {"type": "error", "error": {
        "type": "rate_limit_error",
        "message": "This request would exceed your organization's rate limit."},
        "request_id": r.headers["request-id"]}
    # A 529 before any text is retried by the server: the person just gets the answer.
    served.local.api.faults = FaultOnce(Fault("529"))
    assert stream(served, {"message": "hello"})[-1][1]["text"] == "hello"


def test_error_after_text_ends_the_stream_with_an_error_event(served: Served) -> None:
    served.local.api.faults = FaultOnce(Fault("midstream"))
    events = stream(served, {"message": "one two three four five six"})
    *deltas, last = events
    assert len(deltas) == 2 and all(n == "message" and "text" in d for n, d in deltas)
    assert last == ("error", {"type": "error",
                              "error": {"type": "overloaded_error", "message": "Overloaded"}})


@pytest.mark.local_config(token_ms=50)
def test_client_disconnect_cancels_generation_upstream(served: Served) -> None:
    engine = CountingEngine(served.local.api.engine)
    served.local.api.engine = engine
    started = time.monotonic()
    with served.client() as http, \
            http.stream("POST", "/v1/chat/stream", json={"message": LONG}) as r:
        got = 0
        for line in r.iter_lines():
            got += line.startswith("data:")
            if got == 3:
                break  # leaving the block closes the connection mid-answer
    wait_for(lambda: engine.cut == 1, timeout_s=4, what="the upstream request to end")
    cut_after_s = time.monotonic() - started
    assert cut_after_s < 2.5  # the whole answer would take 80 x 50 ms = 4 s
    produced = engine.tokens
    time.sleep(0.3)
    assert engine.tokens == produced < 40 and engine.finished == 0 and engine.active == 0
    assert served.local.api.stats["ok"] == 0  # the upstream stream never completed
    governor = served.agent.governor.snapshot()["claude-haiku-4-5"]
    assert governor["in_flight"]["interactive"] == 0  # the permit was given back
