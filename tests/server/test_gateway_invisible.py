"""The gateway is invisible (issue 26, item 3): the same official-SDK calls made straight
to the local API and through ``laneway serve`` in front of it raise the same exception
class with the same ``error.type`` and message, and every error answer's ``request-id``
header is its body's ``request_id`` (400, 401, 403, 404, 413, 429, 529). Where the
gateway answers for itself (a laneway key unknown, a budget spent, a key's rate), the
SDK sees the class and type the API would give. Message Batches too: create, retrieve,
list, results, cancel, and deleting a canceling batch is the API's 400 on both sides.

One local API and one gateway serve the whole module (a few seconds in all).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import make_engine
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello in five words."}]
KEY = "k"  # the local API's key, which the gateway's upstream client sends
#: A request whose prompt holds this word is answered only once the test opens the gate.
HOLD = "HOLD-THIS-ONE"


class GatedEngine:
    """The echo engine, except that a prompt holding :data:`HOLD` waits for the gate: a
    batch holding one stays in progress (and canceling) as long as the test needs."""

    def __init__(self) -> None:
        self.inner = make_engine("echo")
        self.name = self.inner.name
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def count_tokens(self, prompt: Any) -> int:
        return int(self.inner.count_tokens(prompt))

    async def generate(self, prompt: Any, params: Any) -> AsyncIterator[str]:
        if HOLD in prompt.last_user_text:
            await asyncio.to_thread(self.gate.wait, 30)
        async for token in self.inner.generate(prompt, params):
            yield token

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def engine() -> GatedEngine:
    return GatedEngine()


@pytest.fixture(scope="module")
def local(engine: GatedEngine) -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(api_key=KEY), engine=engine)  # type: ignore[arg-type]
    try:
        yield running
    finally:
        engine.gate.set()
        running.stop(wait=False)


@pytest.fixture(scope="module")
def served(local: RunningLocal, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Priced as the API (a budget means something); a request may wait 1 s upstream."""
    db: Path = tmp_path_factory.mktemp("gateway") / "ledger.db"
    s = start_server(local, db, kind="anthropic",
                     gateway=GatewaySettings(waits=WaitLimits(1.0, 1.0), cancel_wait_s=0.2))
    try:
        yield s
    finally:
        s.stop()


def sdk(base_url: str, key: str = KEY, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0,
                               default_headers=headers or None)


def raised(call: Callable[[], Any]) -> anthropic.APIStatusError:
    with pytest.raises(anthropic.APIStatusError) as info:
        call()
    err = info.value
    assert err.body["type"] == "error", err.body
    assert err.body["request_id"].startswith("req_")
    assert err.response.headers["request-id"] == err.body["request_id"] == err.request_id
    return err


def same(direct: anthropic.APIStatusError, relayed: anthropic.APIStatusError, *,
         message: bool = True) -> None:
    """The same class, status, type and (but for the batch id each side has) message."""
    assert type(relayed) is type(direct), (direct, relayed)
    assert relayed.status_code == direct.status_code
    assert relayed.type == direct.type
    if message:
        assert _ids.sub("ID", relayed.api_message) == _ids.sub("ID", direct.api_message)


_ids = re.compile(r"msgbatch_\w+")


def both(served: Served, call: Callable[[anthropic.Anthropic], Any], *,
         message: bool = True, **headers: str) -> anthropic.APIStatusError:
    direct = raised(lambda: call(sdk(served.local.base_url, **headers)))
    relayed = raised(lambda: call(sdk(served.base_url, **headers)))
    same(direct, relayed, message=message)
    return relayed


# -- errors ------------------------------------------------------------------------------

BAD: dict[str, Callable[[anthropic.Anthropic], Any]] = {
    "an unknown field": lambda c: c.messages.create(
        model=MODEL, max_tokens=5, messages=HI, extra_body={"not_a_field": 1}),
    "an unknown field, streamed": lambda c: c.messages.stream(
        model=MODEL, max_tokens=5, messages=HI, extra_body={"not_a_field": 1}).__enter__(),
    "a bad role": lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=[
        {"role": "robot", "content": "hi"}]),
    "no messages": lambda c: c.messages.count_tokens(model=MODEL, messages=[]),
    "a batch list limit": lambda c: c.messages.batches.list(limit=0),
    "a batch list cursor": lambda c: c.messages.batches.list(after_id="msgbatch_nope"),
    "a batch of no requests": lambda c: c.messages.batches.create(requests=[]),
    "a bad custom_id": lambda c: c.messages.batches.create(requests=[
        {"custom_id": "no spaces", "params": {"model": MODEL, "max_tokens": 5,
                                              "messages": HI}}]),
}


@pytest.mark.parametrize("call", BAD.values(), ids=BAD.keys())
def test_400(served: Served, call: Callable[[anthropic.Anthropic], Any]) -> None:
    assert isinstance(both(served, call), anthropic.BadRequestError)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/batches"])
def test_400_a_body_not_json(served: Served, path: str) -> None:
    answers = []
    for base_url in (served.local.base_url, served.base_url):
        with httpx.Client(base_url=base_url, timeout=10) as http:
            answers.append(http.post(path, content=b'{"model": ', headers={
                "x-api-key": KEY, "anthropic-version": "2023-06-01",
                "content-type": "application/json"}))
    direct, relayed = (a.json() for a in answers)
    assert [a.status_code for a in answers] == [400, 400]
    assert relayed["error"] == direct["error"]
    assert [a.headers["request-id"] for a in answers] == [direct["request_id"],
                                                          relayed["request_id"]]


def test_400_a_bad_version(served: Served) -> None:
    for call in (lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=HI),
                 lambda c: c.messages.batches.list()):
        both(served, call, **{"anthropic-version": "yesterday"})


def test_401(served: Served) -> None:
    """Straight: a wrong API key; through the gateway: a laneway key it does not know."""
    direct = raised(lambda: sdk(served.local.base_url, "wrong").messages.create(
        model=MODEL, max_tokens=5, messages=HI))
    for call in (lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=HI),
                 lambda c: c.messages.count_tokens(model=MODEL, messages=HI),
                 lambda c: c.models.list(), lambda c: c.messages.batches.list()):
        relayed = raised(lambda: call(sdk(served.base_url, "lw_unknown")))  # noqa: B023
        same(direct, relayed, message=False)
        assert isinstance(relayed, anthropic.AuthenticationError)


def test_403(served: Served) -> None:
    """The upstream's 403 comes back as it was; the gateway's own (a key's budget
    spent) is the same class and type."""
    call = lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=HI)  # noqa: E731
    relayed = both(served, call, **{"x-laneway-fault": "403"})
    assert isinstance(relayed, anthropic.PermissionDeniedError)
    _, secret = served.agent.store.create_key("spent", budget_usd=1e-9)  # (0 is refused)
    own = raised(lambda: call(sdk(served.base_url, secret)))
    same(relayed, own, message=False)
    assert "budget" in own.api_message


NOT_FOUND: dict[str, Callable[[anthropic.Anthropic], Any]] = {
    "a model": lambda c: c.models.retrieve("claude-no-such-model"),
    "a batch": lambda c: c.messages.batches.retrieve("msgbatch_nope"),
    "a batch's results": lambda c: c.messages.batches.results("msgbatch_nope"),
    "a batch to cancel": lambda c: c.messages.batches.cancel("msgbatch_nope"),
    "a batch to delete": lambda c: c.messages.batches.delete("msgbatch_nope"),
    "a path": lambda c: c.get("/v1/no-such-thing", cast_to=httpx.Response),
}


@pytest.mark.parametrize("call", NOT_FOUND.values(), ids=NOT_FOUND.keys())
def test_404(served: Served, call: Callable[[anthropic.Anthropic], Any]) -> None:
    assert isinstance(both(served, call), anthropic.NotFoundError)


def test_413(served: Served) -> None:
    big = [{"role": "user", "content": "x" * 33_000_000}]
    relayed = both(served, lambda c: c.messages.create(model=MODEL, max_tokens=5,
                                                       messages=big))
    assert isinstance(relayed, anthropic.ContentTooLargeError)
    assert served.local.api.stats["requests"] < 100  # neither reached the upstream's engine


def test_429(served: Served) -> None:
    """The upstream's 429 past the wait limit (its retry-after 1 s > the 1 s limit left)
    comes back as it was; the gateway's own (a key's rate) is the same class and type,
    with its retry-after."""
    call = lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=HI)  # noqa: E731
    relayed = both(served, call, **{"x-laneway-fault": "429:1"})
    assert isinstance(relayed, anthropic.RateLimitError)
    assert relayed.response.headers["x-should-retry"] == "false"
    wait_for(lambda: _ok(sdk(served.base_url)), timeout_s=5,
             what="the lane to resume after the 429")
    _, secret = served.agent.store.create_key("slow", rpm=1)
    client = sdk(served.base_url, secret)
    call(client)
    own = raised(lambda: call(client))
    same(relayed, own, message=False)
    assert 55 <= int(own.response.headers["retry-after"]) <= 60


def _ok(client: anthropic.Anthropic) -> bool:
    try:
        client.messages.create(model=MODEL, max_tokens=5, messages=HI)
    except anthropic.APIStatusError:
        return False
    return True


CALLS: dict[str, Callable[[anthropic.Anthropic], Any]] = {
    "create": lambda c: c.messages.create(model=MODEL, max_tokens=5, messages=HI),
    "stream": lambda c: c.messages.stream(
        model=MODEL, max_tokens=5, messages=HI).__enter__().get_final_message(),
    "count_tokens": lambda c: c.messages.count_tokens(model=MODEL, messages=HI),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_529(served: Served, call: Callable[[anthropic.Anthropic], Any]) -> None:
    """Overloaded: tried again inside the wait limit, then the upstream's answer."""
    relayed = both(served, call, **{"x-laneway-fault": "529"})
    assert isinstance(relayed, anthropic.OverloadedError)
    assert relayed.api_message == "Overloaded"
    assert relayed.response.headers["x-should-retry"] == "false"


# -- Message Batches -------------------------------------------------------------------

def _requests(*texts: str) -> list[Any]:
    return [{"custom_id": f"r{i}", "params": {
        "model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": t}]}}
        for i, t in enumerate(texts)]


def test_batches(served: Served, engine: GatedEngine) -> None:
    """The same calls, the same objects: a batch held in progress (one request waits for
    the gate) is canceled, cannot be deleted while canceling (400 on both sides), ends,
    gives its results, and is deleted."""
    clients = {"direct": sdk(served.local.base_url), "gateway": sdk(served.base_url)}
    made = {name: c.messages.batches.create(requests=_requests("one", HOLD, "three"))
            for name, c in clients.items()}
    # The gateway's batch has sent its upstream batch: a cancel now leaves it canceling.
    wait_for(lambda: len(served.local.api.batches.batches) >= 2, what="the upstream batch")
    for name, c in clients.items():
        batch = made[name]
        assert batch.processing_status == "in_progress" and batch.results_url is None
        assert batch.request_counts.processing == 3
        assert c.messages.batches.retrieve(batch.id).id == batch.id
        listed = c.messages.batches.list(limit=5)  # direct: the gateway's upstream one too
        mine = [b for b in listed.data if b.id == batch.id]
        assert len(mine) == 1 and mine[0].model_dump() == batch.model_dump()
        canceled = c.messages.batches.cancel(batch.id)
        assert canceled.processing_status == "canceling" and canceled.cancel_initiated_at
    same(*(raised(lambda c=c, b=made[n]: c.messages.batches.delete(b.id))
           for n, c in clients.items()))
    # The SDK asks for no results before a batch has a results_url: asked all the same.
    same(*(raised(lambda c=c, b=made[n]: c.get(f"/v1/messages/batches/{b.id}/results",
                                               cast_to=httpx.Response))
           for n, c in clients.items()))
    engine.gate.set()
    ended = {}
    for name, c in clients.items():
        wait_for(lambda c=c, b=made[name]: c.messages.batches.retrieve(b.id)
                 .processing_status == "ended", timeout_s=10, what=f"the {name} batch's end")
        ended[name] = c.messages.batches.retrieve(made[name].id)
    assert set(ended["direct"].model_dump()) == set(ended["gateway"].model_dump())
    assert ended["direct"].request_counts == ended["gateway"].request_counts
    outcomes, gone = [], []
    for name, c in clients.items():
        batch = ended[name]
        counts = batch.request_counts
        assert counts.processing == 0 and counts.succeeded + counts.canceled == 3
        assert batch.results_url and batch.results_url.startswith(
            served.base_url if name == "gateway" else served.local.base_url)
        results = {r.custom_id: r.result for r in c.messages.batches.results(batch.id)}
        assert set(results) == {"r0", "r1", "r2"}
        assert results["r1"].type == "succeeded"  # under way when canceled: it finished
        outcomes.append({k: (r.type, r.message.content[0].text if r.type == "succeeded"
                             else None) for k, r in results.items()})
        assert c.messages.batches.delete(batch.id).type == "message_batch_deleted"
        gone.append(raised(lambda c=c, b=batch: c.messages.batches.retrieve(b.id)))
    assert outcomes[0] == outcomes[1]
    same(*gone)

