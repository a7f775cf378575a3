"""Message Batches through the gateway: the official SDK's ``client.messages.batches``
against ``laneway serve`` gets what the API (here the local API, called straight) gives,
while laneway fulfils each batch as a run of its ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest

from laneway.local import LocalConfig, RunningLocal
from laneway.server.gateway import GatewaySettings

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
FAST = LocalConfig(batch_min_s=0.3)


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANEWAY_BATCH_POLL_S", "0.05,0.2")


@pytest.fixture
def served(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    s = start_server(local_api, tmp_path / "ledger.db")
    try:
        yield s
    finally:
        s.stop()


def sdk(base_url: str, key: str = "any") -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)


def requests(n: int, prefix: str = "q") -> list[dict[str, Any]]:
    return [{"custom_id": f"{prefix}-{i}",
             "params": {"model": MODEL, "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"Question number {i}."}]}}
            for i in range(n)]


def raw(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    data: dict[str, Any] = client.messages.batches.with_raw_response.retrieve(
        batch_id).http_response.json()
    return data


def ended(client: anthropic.Anthropic, batch_id: str) -> dict[str, Any]:
    wait_for(lambda: raw(client, batch_id)["processing_status"] == "ended", timeout_s=30,
             what=f"batch {batch_id} to end")
    return raw(client, batch_id)


def upstream_batches(local: RunningLocal) -> int:
    return len(local.api.batches.batches)


def result_lines(base_url: str, batch_id: str) -> tuple[str, list[dict[str, Any]]]:
    with httpx.Client(timeout=10) as http:
        r = http.get(f"{base_url}/v1/messages/batches/{batch_id}/results",
                     headers={"x-api-key": "any", "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    assert r.content.endswith(b"\n") and b"\n\n" not in r.content
    return r.headers["content-type"], [json.loads(x) for x in r.content.splitlines()]


def shape(value: Any) -> Any:
    """The keys and types of a JSON value, without its values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k not in ("id", "request_id")}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


@pytest.mark.parametrize("local_api", [FAST], indirect=True)
def test_a_batch_through_the_gateway_is_the_apis(served: Served) -> None:
    gateway, direct = sdk(served.base_url), sdk(served.local.base_url)
    made = gateway.messages.batches.with_raw_response.create(requests=requests(3))
    assert made.headers["laneway-mode"] == "native"  # the batch price, as asked
    batch, reference = made.parse(), direct.messages.batches.create(requests=requests(3))
    first = raw(gateway, batch.id)
    assert set(first) == set(raw(direct, reference.id))
    assert batch.id.startswith("msgbatch_") and len(batch.id) == len(reference.id)
    assert first["processing_status"] == "in_progress" and first["results_url"] is None
    assert first["request_counts"] == {"processing": 3, "succeeded": 0, "errored": 0,
                                       "canceled": 0, "expired": 0}
    assert (batch.expires_at - batch.created_at).total_seconds() == 24 * 3600
    pages = [c.messages.batches.with_raw_response.list().http_response.json()
             for c in (gateway, direct)]
    assert set(pages[0]) == set(pages[1]) and shape(pages[0]) == shape(pages[1])

    done, reference_done = ended(gateway, batch.id), ended(direct, reference.id)
    assert done["request_counts"] == reference_done["request_counts"] == {
        "processing": 0, "succeeded": 3, "errored": 0, "canceled": 0, "expired": 0}
    assert done["ended_at"] is not None
    assert done["results_url"] == f"{served.base_url}/v1/messages/batches/{batch.id}/results"
    assert upstream_batches(served.local) == 2  # one for the gateway's run, and ours

    ctype, lines = result_lines(served.base_url, batch.id)
    ref_ctype, ref_lines = result_lines(served.local.base_url, reference.id)
    assert ctype == ref_ctype == "application/binary"
    assert sorted(x["custom_id"] for x in lines) == ["q-0", "q-1", "q-2"]
    assert shape(lines[0]) == shape(ref_lines[0])
    by_id = {x["custom_id"]: x["result"]["message"]["content"] for x in ref_lines}
    assert {x["custom_id"]: x["result"]["message"]["content"] for x in lines} == by_id
    results = list(gateway.messages.batches.results(batch.id))  # the SDK follows results_url
    assert {r.custom_id: r.result.type for r in results} == dict.fromkeys(by_id, "succeeded")

    gone = gateway.messages.batches.delete(batch.id)
    assert (gone.id, gone.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        gateway.messages.batches.retrieve(batch.id)


def test_a_create_is_refused_as_the_api_refuses_it(served: Served) -> None:
    one = requests(1)[0]
    bodies: list[Any] = [
        {}, {"requests": []}, {"requests": "x"}, {"requests": [one, one]},
        {"requests": [{**one, "custom_id": "has space"}]}, {"requests": [{"custom_id": "a"}]},
        {"requests": [{**one, "custom_id": "x" * 65}]}, {"requests": [7]}]
    headers = {"x-api-key": "any", "anthropic-version": "2023-06-01"}
    with httpx.Client(timeout=10) as http:
        for body in bodies:
            mine = http.post(f"{served.base_url}/v1/messages/batches", json=body,
                             headers=headers)
            theirs = http.post(f"{served.local.base_url}/v1/messages/batches", json=body,
                               headers=headers)
            assert mine.status_code == theirs.status_code == 400, body
            assert mine.json()["error"] == theirs.json()["error"], body
        bad = http.post(f"{served.base_url}/v1/messages/batches", content=b"{",
                        headers={**headers, "content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
        for name, value in (("laneway-mode", "fastest"), ("laneway-deadline", "soon")):
            r = http.post(f"{served.base_url}/v1/messages/batches",
                          json={"requests": [one]}, headers={**headers, name: value})
            assert r.status_code == 400 and name in r.json()["error"]["message"]
    assert upstream_batches(served.local) == 0


@pytest.mark.parametrize("local_api", [FAST], indirect=True)
def test_bad_params_come_back_errored_not_refused(served: Served) -> None:
    gateway = sdk(served.base_url)
    good = requests(1)[0]
    bad = {"custom_id": "no-max", "params": {"model": MODEL, "messages": [
        {"role": "user", "content": "hi"}]}}
    batch = gateway.messages.batches.create(requests=[good, bad])  # type: ignore[list-item]
    done = ended(gateway, batch.id)
    assert done["request_counts"]["succeeded"] == 1 and done["request_counts"]["errored"] == 1
    results = {r.custom_id: r.result for r in gateway.messages.batches.results(batch.id)}
    assert results["q-0"].type == "succeeded"
    assert results["no-max"].type == "errored"
    assert results["no-max"].error.error.type == "invalid_request_error"  # type: ignore[union-attr]
    assert "max_tokens" in results["no-max"].error.error.message  # type: ignore[union-attr]


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=30)], indirect=True)
def test_list_pages_newest_first_and_only_the_keys_own(served: Served) -> None:
    _, mine = served.agent.store.create_key("mine")
    _, other = served.agent.store.create_key("other")
    made = [sdk(served.base_url, mine).messages.batches.create(requests=requests(1)).id
            for _ in range(3)]
    anonymous = sdk(served.base_url).messages.batches.create(requests=requests(1)).id
    client = sdk(served.base_url, mine)
    page = client.messages.batches.with_raw_response.list(limit=2).http_response.json()
    assert [b["id"] for b in page["data"]] == [made[2], made[1]]
    assert page["has_more"] is True
    assert (page["first_id"], page["last_id"]) == (made[2], made[1])
    rest = client.messages.batches.list(limit=2, after_id=made[1])
    assert [b.id for b in rest.data] == [made[0]] and rest.has_more is False
    back = client.messages.batches.list(limit=5, before_id=made[0])
    assert [b.id for b in back.data] == [made[2], made[1]]
    assert [b.id for b in client.messages.batches.list()] == made[::-1]  # the SDK pages
    assert [b.id for b in sdk(served.base_url).messages.batches.list()] == [anonymous]
    assert list(sdk(served.base_url, other).messages.batches.list()) == []
    with pytest.raises(anthropic.NotFoundError):
        sdk(served.base_url, other).messages.batches.retrieve(made[0])
    with pytest.raises(anthropic.NotFoundError):
        sdk(served.base_url, other).messages.batches.cancel(made[0])
    with pytest.raises(anthropic.BadRequestError, match="after_id"):
        sdk(served.base_url, other).messages.batches.list(after_id=made[0])
    with pytest.raises(anthropic.BadRequestError, match="limit"):
        client.messages.batches.list(limit=0)


SLOW = LocalConfig(token_ms=100, batch_concurrency=1)


@pytest.mark.parametrize("local_api", [SLOW], indirect=True)
def test_cancel_ends_the_batch_with_canceled_counts(served: Served) -> None:
    gateway = sdk(served.base_url)
    batch = gateway.messages.batches.create(requests=requests(6))
    wait_for(lambda: upstream_batches(served.local) == 1, what="the upstream batch")
    with httpx.Client(timeout=10) as http:  # the SDK asks only once there is a results_url
        early = http.get(f"{served.base_url}/v1/messages/batches/{batch.id}/results",
                         headers={"x-api-key": "any"})
    assert early.status_code == 404 and early.json()["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.BadRequestError, match="still in_progress"):
        gateway.messages.batches.delete(batch.id)
    canceling = gateway.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None and canceling.ended_at is None
    assert canceling.request_counts.processing == 6  # counts stay 0 until the end
    done = ended(gateway, batch.id)
    counts = done["request_counts"]
    assert counts["canceled"] >= 1 and counts["processing"] == 0
    assert sum(counts.values()) == 6
    results = list(gateway.messages.batches.results(batch.id))
    assert len(results) == 6
    assert sum(r.result.type == "canceled" for r in results) == counts["canceled"]
    assert gateway.messages.batches.delete(batch.id).type == "message_batch_deleted"


@pytest.mark.parametrize("local_api", [FAST], indirect=True)
def test_a_deadline_lets_the_planner_run_it_realtime(served: Served) -> None:
    made = sdk(served.base_url).messages.batches.with_raw_response.create(
        requests=requests(2), extra_headers={"laneway-deadline": "1m"})
    assert made.headers["laneway-mode"] == "realtime"
    batch = made.parse()
    assert ended(sdk(served.base_url), batch.id)["request_counts"]["succeeded"] == 2
    assert upstream_batches(served.local) == 0  # sent as messages, not as a batch
    store = served.agent.store
    row = store.gateway_batch(batch.id, key_id=None)
    assert row is not None and row.mode == "realtime" and row.plan is not None
    assert row.plan.startswith("realtime:")  # why, kept in the ledger
    run = store.get_run(batch.id)
    assert run is not None and run.mode == "realtime"


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=3)], indirect=True)
def test_a_batch_survives_the_gateways_restart(local_api: RunningLocal,
                                               tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    first = start_server(local_api, db)
    try:
        batch = sdk(first.base_url).messages.batches.create(requests=requests(4))
        wait_for(lambda: upstream_batches(local_api) == 1, what="the upstream batch")
    finally:
        first.stop()  # mid-batch: the upstream batch keeps running
    assert not next(iter(local_api.api.batches.batches.values())).ended_at
    second = start_server(local_api, db)
    try:
        # Kept while the results stream: the client's connection closes with it.
        client = sdk(second.base_url)
        done = ended(client, batch.id)
        assert done["request_counts"]["succeeded"] == 4
        assert upstream_batches(local_api) == 1  # re-attached, never submitted again
        results = list(client.messages.batches.results(batch.id))
        assert sorted(r.custom_id for r in results) == [f"q-{i}" for i in range(4)]
    finally:
        second.stop()


@pytest.mark.parametrize("local_api", [FAST], indirect=True)
def test_results_url_is_on_the_public_url(local_api: RunningLocal, tmp_path: Path) -> None:
    served = start_server(local_api, tmp_path / "ledger.db",
                          gateway=GatewaySettings(public_url="https://gw.example/"))
    try:
        batch = sdk(served.base_url).messages.batches.create(requests=requests(1))
        done = ended(sdk(served.base_url), batch.id)
    finally:
        served.stop()
    assert done["results_url"] == f"https://gw.example/v1/messages/batches/{batch.id}/results"


@pytest.mark.parametrize("local_api", [LocalConfig(token_ms=300, batch_concurrency=1)],
                         indirect=True)
def test_what_is_unfinished_at_the_expiry_expires(served: Served,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("laneway.server.gateway.batches.DAY_S", 1.5)  # 24 h, shrunk
    gateway = sdk(served.base_url)
    batch = gateway.messages.batches.create(requests=requests(6))
    assert (batch.expires_at - batch.created_at).total_seconds() == 1.5
    done = ended(gateway, batch.id)
    counts = done["request_counts"]
    assert counts["expired"] >= 1 and counts["canceled"] == 0
    assert sum(counts.values()) == 6 and done["cancel_initiated_at"] is None
    results = list(gateway.messages.batches.results(batch.id))
    assert sum(r.result.type == "expired" for r in results) == counts["expired"]
