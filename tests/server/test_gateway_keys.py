"""Client keys on the gateway: who may send, what a key may spend, how fast, in which
lane, and every request in the ledger under its key."""

from __future__ import annotations

from pathlib import Path

import anthropic
import httpx
import pytest

from laneway.local import RunningLocal

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]


def sdk(base_url: str, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)


def traffic(served: Served) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = served.agent.store.traffic_by_key()
    return rows


def test_requests_are_recorded_under_their_key_and_lane(served: Served) -> None:
    _, secret = served.agent.store.create_key("app", lane="background")
    reply = sdk(served.base_url, secret).messages.create(model=MODEL, max_tokens=20,
                                                         messages=HI)
    with sdk(served.base_url, secret).messages.stream(model=MODEL, max_tokens=20,
                                                      messages=HI) as s:
        streamed = s.get_final_message()
    sdk(served.base_url, "placeholder").messages.create(model=MODEL, max_tokens=5,
                                                        messages=HI)
    wait_for(lambda: sum(int(r["requests"]) for r in traffic(served)) == 3,
             what="the traffic to reach the ledger")
    rows = {(r["key"], r["lane"]): r for r in traffic(served)}
    # The key forces its lane, even on a stream (which would be interactive).
    app = rows[("app", "background")]
    assert app["requests"] == 2 and app["errors"] == 0
    assert app["output_tokens"] == reply.usage.output_tokens + streamed.usage.output_tokens
    assert app["input_tokens"] == reply.usage.input_tokens + streamed.usage.input_tokens
    assert rows[("local", "background")]["requests"] == 1  # no laneway key: anonymous


def test_an_unknown_or_revoked_key_is_refused(served: Served) -> None:
    with pytest.raises(anthropic.AuthenticationError, match="invalid laneway key"):
        sdk(served.base_url, "lw_" + "x" * 43).messages.create(model=MODEL, max_tokens=5,
                                                               messages=HI)
    _, secret = served.agent.store.create_key("gone")
    assert sdk(served.base_url, secret).messages.create(model=MODEL, max_tokens=5,
                                                        messages=HI).content
    served.agent.store.revoke_key("gone")  # the next request sees it
    with pytest.raises(anthropic.AuthenticationError):
        sdk(served.base_url, secret).messages.create(model=MODEL, max_tokens=5, messages=HI)


def test_a_key_over_its_rate_gets_429_with_retry_after(served: Served) -> None:
    _, secret = served.agent.store.create_key("slow", rpm=2)
    client = sdk(served.base_url, secret)
    for _ in range(2):
        client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    with pytest.raises(anthropic.RateLimitError, match="2 requests per minute") as info:
        client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    # The bucket of 2 refills one request every 30 s: the next may go 30 s on.
    assert 25 <= int(info.value.response.headers["retry-after"]) <= 30
    assert served.local.api.completions.completed == 2


def test_a_spent_budget_is_a_403_and_nothing_more_is_sent(
        local_api: RunningLocal, tmp_path: Path) -> None:
    # Priced as the real API: claude-haiku-4-5 at $1/$5 per million tokens. A request of
    # max_tokens 100 may cost up to ~$0.0005; the budget holds a few of them.
    served = start_server(local_api, tmp_path / "l.db", kind="anthropic")
    try:
        _, secret = served.agent.store.create_key("capped", budget_usd=0.0012)
        client = sdk(served.base_url, secret)
        sent = 0
        with pytest.raises(anthropic.PermissionDeniedError, match="budget") as info:
            for _ in range(20):
                client.messages.create(model=MODEL, max_tokens=100, messages=HI)
                sent += 1
        assert info.value.body["error"]["type"] == "permission_error"
        assert 1 <= sent < 20 and local_api.api.completions.completed == sent
        wait_for(lambda: served.agent.store.spent_usd(
            served.agent.store.list_keys()[0].id) > 0, what="the spend to be recorded")
        spent = served.agent.store.spent_usd(served.agent.store.list_keys()[0].id)
        assert spent <= 0.0012
        with pytest.raises(anthropic.PermissionDeniedError, match="no known price"):
            client.messages.create(model="not-a-real-model", max_tokens=5, messages=HI)
    finally:
        served.stop()


def test_with_a_token_the_gateway_needs_a_key_or_the_token(
        local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", token="s3cret")
    try:
        # Anything but a known laneway key or the token itself is refused before it is
        # sent: a token's look-alike, a key of the right form that the ledger does not know.
        for wrong in ("anything", "s3cre", "s3cret2", "S3CRET"):
            with pytest.raises(anthropic.AuthenticationError, match="needs a laneway key"):
                sdk(served.base_url, wrong).messages.create(model=MODEL, max_tokens=5,
                                                            messages=HI)
        with pytest.raises(anthropic.AuthenticationError, match="invalid laneway key"):
            sdk(served.base_url, "lw_" + "x" * 43).messages.create(model=MODEL, max_tokens=5,
                                                                   messages=HI)
        assert local_api.api.completions.completed == 0
        _, secret = served.agent.store.create_key("remote")
        assert sdk(served.base_url, secret).messages.create(model=MODEL, max_tokens=5,
                                                            messages=HI).content
        assert sdk(served.base_url, "s3cret").models.list().data
        # The rest of the server still wants the token itself, not a client key.
        r = httpx.get(served.base_url + "/v1/runs", headers={"x-api-key": secret})
        assert r.status_code == 401
    finally:
        served.stop()


def test_with_a_token_models_and_count_tokens_need_a_key_too(
        local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", token="s3cret")
    try:
        with pytest.raises(anthropic.AuthenticationError):
            sdk(served.base_url, "anything").models.list()
        with pytest.raises(anthropic.AuthenticationError):
            sdk(served.base_url, "anything").messages.count_tokens(model=MODEL, messages=HI)
    finally:
        served.stop()
