"""The gateway's money promises (issue 24): a key's budget and rate hold in the ledger,
from its first request, across processes (two gateways on one ledger: SQLite and a
real PostgreSQL), for Message Batches and for streams a client leaves; a revoke or a
new limit takes effect on the next request. Each count of what was billed comes from
the upstream (the local API's completions)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from sqlalchemy import func, select

import pgserver
from laneway.cost.prices import Usage, cost_usd
from laneway.local import RunningLocal
from laneway.store import ClientKey, open_store
from laneway.store import schema as S

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
#: The echo engine answers with the prompt: 200 words in, about 200 tokens out.
LONG = [{"role": "user", "content": "word " * 200}]



@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    server: str = request.getfixturevalue("pg_server")
    name, dsn = pgserver.new_schema(server)
    yield dsn
    pgserver.drop_schema(server, name)


@pytest.fixture
def two(local_api: RunningLocal, ledger: str) -> Iterator[list[Served]]:
    """Two gateways on one ledger, as two processes would be (each its own agent, store
    connection and key checks), priced as the real API."""
    servers = [start_server(local_api, ledger, kind="anthropic") for _ in range(2)]  # type: ignore[arg-type]
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


def key_of(served: Served, name: str) -> ClientKey:
    return next(k for k in served.agent.store.list_keys(include_revoked=True)
                if k.name == name)


async def fire(urls: list[str], secret: str, n: int, **params: Any) -> list[Any]:
    """``n`` requests at once, spread over ``urls``: each a Message or the exception."""
    clients = [anthropic.AsyncAnthropic(base_url=u, api_key=secret, max_retries=0)
               for u in urls]
    try:
        return await asyncio.gather(*[
            clients[i % len(clients)].messages.create(model=MODEL, **params)
            for i in range(n)], return_exceptions=True)
    finally:
        for c in clients:
            await c.close()


def billed(local: RunningLocal, one: anthropic.types.Message) -> float:
    """What the upstream billed: its completions, each costing what one answer did
    (every request here is the same, so every answer is)."""
    return local.api.completions.completed * cost_usd(
        MODEL, Usage.from_api(one.usage.model_dump()))


def reserved_rows(served: Served) -> int:
    with served.agent.store.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).where(
            S.gateway_requests.c.state == "reserved")) or 0)


def settled(served: Served, name: str) -> ClientKey:
    wait_for(lambda: key_of(served, name).reserved_usd < 1e-9, timeout_s=30,
             what="the reservations to be settled")
    return key_of(served, name)


def test_fifty_at_once_on_a_first_use_across_two_gateways_stay_in_budget(
        two: list[Served], local_api: RunningLocal) -> None:
    _, secret = two[0].agent.store.create_key("capped", budget_usd=0.01)
    out = asyncio.run(fire([s.base_url for s in two], secret, 50, max_tokens=300,
                           messages=LONG))
    answered = [m for m in out if isinstance(m, anthropic.types.Message)]
    refused = [e for e in out if isinstance(e, anthropic.PermissionDeniedError)]
    assert answered and refused and len(answered) + len(refused) == 50
    assert "budget" in str(refused[0]) and "max_tokens 300" in str(refused[0])
    assert local_api.api.completions.completed == len(answered)
    assert billed(local_api, answered[0]) <= 0.01  # was 6x the budget on old main
    key = settled(two[1], "capped")
    assert key.spent_usd <= 0.01 and key.spent_usd == pytest.approx(
        billed(local_api, answered[0]))


def test_punctuation_is_bounded_by_its_bytes(served_priced: Served,
                                            local_api: RunningLocal) -> None:
    # One token per character: an estimate of characters / 4 held a quarter of it.
    text = "!?" * 400
    _, secret = served_priced.agent.store.create_key("dots", budget_usd=0.01)
    client = anthropic.Anthropic(base_url=served_priced.base_url, api_key=secret,
                                 max_retries=0)
    msgs = [{"role": "user", "content": text}]
    client.messages.create(model=MODEL, max_tokens=1, messages=msgs)  # a warm key
    out = asyncio.run(fire([served_priced.base_url], secret, 50, max_tokens=1,
                           messages=msgs))
    answered = [m for m in out if isinstance(m, anthropic.types.Message)]
    assert answered and answered[0].usage.input_tokens >= 800
    assert local_api.api.completions.completed == len(answered) + 1
    assert billed(local_api, answered[0]) <= 0.01  # was 3.2x the budget on old main
    assert settled(served_priced, "dots").spent_usd <= 0.01


@pytest.fixture
def served_priced(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    s = start_server(local_api, tmp_path / "l.db", kind="anthropic")
    try:
        yield s
    finally:
        s.stop()


@pytest.mark.local_config(token_ms=20.0)
def test_a_stream_left_after_one_chunk_is_cut_upstream_and_charged_its_worst_case(
        served_priced: Served, local_api: RunningLocal) -> None:
    _, secret = served_priced.agent.store.create_key("leaver", budget_usd=1.0)
    body = {"model": MODEL, "max_tokens": 500, "stream": True,
            "messages": [{"role": "user", "content": "word " * 300}]}
    with httpx.Client(timeout=10) as http, http.stream(
            "POST", served_priced.base_url + "/v1/messages", json=body,
            headers={"x-api-key": secret, "anthropic-version": "2023-06-01"}) as r:
        assert r.status_code == 200
        next(r.iter_bytes())
    key = settled(served_priced, "leaver")
    # The bound: the body's bytes at $1/M and 500 output tokens at $5/M.
    size = len(httpx.Request("POST", "/", json=body).content)
    assert key.spent_usd == pytest.approx((size * 1.0 + 500 * 5.0) / 1e6)
    assert local_api.api.completions.completed == 0


def test_rpm_is_exact_on_a_first_use_across_two_gateways(
        two: list[Served], local_api: RunningLocal) -> None:
    _, secret = two[0].agent.store.create_key("slow", rpm=10)
    out = asyncio.run(fire([s.base_url for s in two], secret, 30, max_tokens=5,
                           messages=HI))
    limited = [e for e in out if isinstance(e, anthropic.RateLimitError)]
    assert len(limited) == 20 and local_api.api.completions.completed == 10
    after = int(limited[0].response.headers["retry-after"])
    assert 1 <= after <= 6  # a bucket of 10 refilled one request every 6 s


def test_revoke_and_new_limits_take_effect_on_the_next_request(served: Served) -> None:
    _, secret = served.agent.store.create_key("soon-gone")
    client = anthropic.Anthropic(base_url=served.base_url, api_key=secret, max_retries=0)
    client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    # Another process's change (its own connection to the ledger), seen at once.
    other = open_store(served.agent.store.settings)
    try:
        other.set_key("soon-gone", rpm=1)  # counted from now on
        client.messages.create(model=MODEL, max_tokens=5, messages=HI)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model=MODEL, max_tokens=5, messages=HI)
        other.revoke_key("soon-gone")
    finally:
        other.close()
    for call in (lambda: client.messages.create(model=MODEL, max_tokens=5, messages=HI),
                 client.models.list,
                 lambda: client.messages.count_tokens(model=MODEL, messages=HI)):
        with pytest.raises(anthropic.AuthenticationError, match="invalid laneway key"):
            call()


def test_a_batch_reserves_its_worst_case_and_its_cost_is_the_keys(
        served_priced: Served, local_api: RunningLocal,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWAY_BATCH_POLL_S", "0.05,0.2")
    store = served_priced.agent.store
    _, secret = store.create_key("batcher", budget_usd=0.01)
    client = anthropic.Anthropic(base_url=served_priced.base_url, api_key=secret,
                                 max_retries=0)
    reqs = [{"custom_id": f"q-{i}", "params": {
        "model": MODEL, "max_tokens": 20,
        "messages": [{"role": "user", "content": f"Question {i}."}]}} for i in range(100)]
    with pytest.raises(anthropic.PermissionDeniedError, match="this batch could cost"):
        client.messages.batches.create(requests=[
            {**r, "params": {**r["params"], "max_tokens": 1000}} for r in reqs])
    assert len(local_api.api.batches.batches) == 0  # nothing sent for it
    batch = client.messages.batches.create(requests=reqs[:10])
    wait_for(lambda: client.messages.batches.retrieve(batch.id).processing_status ==
             "ended", timeout_s=30, what="the batch to end")
    key = settled(served_priced, "batcher")
    assert 0 < key.spent_usd <= 0.01
    rows = store.traffic_by_key()
    assert sum(r["cost_usd"] for r in rows if r["key"] == "batcher") == \
        pytest.approx(key.spent_usd)
    store.set_key("batcher", budget_usd=key.spent_usd)  # now spent: no batch at all
    with pytest.raises(anthropic.PermissionDeniedError, match="budget"):
        client.messages.batches.create(requests=reqs[:1])


def test_with_a_token_models_and_count_tokens_need_a_key(
        local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "l.db", token="s3cret")
    try:
        for call in ("models", "count"):
            for wrong in ("anything", "lw_" + "x" * 43):
                client = anthropic.Anthropic(base_url=served.base_url, api_key=wrong,
                                             max_retries=0)
                with pytest.raises(anthropic.AuthenticationError):
                    if call == "models":
                        client.models.list()
                    else:
                        client.messages.count_tokens(model=MODEL, messages=HI)
        _, secret = served.agent.store.create_key("reader")
        ok = anthropic.Anthropic(base_url=served.base_url, api_key=secret, max_retries=0)
        assert ok.models.list().data
        assert ok.messages.count_tokens(model=MODEL, messages=HI).input_tokens > 0
        # Refused before their key was known: no ledger row, counted in /metrics.
        assert served.agent.store.traffic_by_key() == []
        with served.client() as http:
            text = http.get("/metrics").text
        assert 'laneway_gateway_refused_unidentified_total{status="401"} 4.0' in text
    finally:
        served.stop()


def test_no_anonymous_refuses_a_keyless_client_once_a_key_exists(
        local_api: RunningLocal, tmp_path: Path) -> None:
    from laneway.server.gateway import GatewaySettings

    served = start_server(local_api, tmp_path / "l.db",
                          gateway=GatewaySettings(anonymous=False))
    try:
        client = anthropic.Anthropic(base_url=served.base_url, api_key="placeholder",
                                     max_retries=0)
        assert client.messages.create(model=MODEL, max_tokens=5, messages=HI).content
        served.agent.store.create_key("first")
        with pytest.raises(anthropic.AuthenticationError, match="anonymous"):
            client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    finally:
        served.stop()



@pytest.mark.local_config(token_ms=100.0)
def test_revoke_refuses_the_requests_a_key_has_queued(local_api: RunningLocal,
                                                      tmp_path: Path) -> None:
    # One background request at a time: the others wait in the lane for their turn.
    served = start_server(local_api, tmp_path / "l.db")
    try:
        served.agent.governor.fix_concurrency(1)
        _, secret = served.agent.store.create_key("queued")

        async def run() -> tuple[list[Any], int]:
            async with anthropic.AsyncAnthropic(base_url=served.base_url, api_key=secret,
                                                max_retries=0) as client:
                tasks = [asyncio.create_task(client.messages.create(
                    model=MODEL, max_tokens=35, messages=LONG)) for _ in range(4)]
                await asyncio.to_thread(wait_for, lambda: reserved_rows(served) == 4,
                                        what="the 4 requests to be admitted")
                served.agent.store.revoke_key("queued")
                # The first is answering (3.5 s); the others are refused long before.
                done, pending = await asyncio.wait(tasks, timeout=2.5)
                await asyncio.gather(*pending, return_exceptions=True)
                return [t.exception() for t in done], len(pending)
        refused, still_running = asyncio.run(run())
        assert still_running == 1 and len(refused) == 3
        assert all(isinstance(e, anthropic.AuthenticationError) and
                   "nothing was sent" in str(e) for e in refused)
        assert local_api.api.completions.completed == 1
    finally:
        served.stop()


@pytest.mark.local_config(batch_min_s=30.0)
def test_revoke_cancels_the_keys_running_batches(served: Served,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWAY_BATCH_POLL_S", "0.05,0.2")
    store = served.agent.store
    _, secret = store.create_key("batcher")
    client = anthropic.Anthropic(base_url=served.base_url, api_key=secret, max_retries=0)
    batch = client.messages.batches.create(requests=[{"custom_id": "a", "params": {
        "model": MODEL, "max_tokens": 5, "messages": HI}}])
    other = open_store(store.settings)  # `laneway keys revoke`, in another process
    try:
        other.revoke_key("batcher")
    finally:
        other.close()

    def ended() -> bool:
        found = store.gateway_batch(batch.id, key_id=None, any_key=True)
        return found is not None and found.ended_at is not None
    wait_for(ended, timeout_s=20, what="the revoked key's batch to be canceled and end")
    assert store.counts(batch.id).remaining == 0
