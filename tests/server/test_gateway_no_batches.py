"""An upstream without Message Batches (the local API with ``batches=False``: 404 on
``/v1/messages/batches``): a gateway batch becomes a realtime run once, says so in the
ledger and the ``laneway-mode`` header, and is reserved at the realtime price; no loop
of creates (issue 29, item 3). Before, the driver tried again every 10 s forever."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
from sqlalchemy import select

from laneway.cost.bound import total, worst_case
from laneway.local import LocalConfig, RunningLocal
from laneway.store import schema as S

from .helpers import Served, start_server, wait_for

MODEL = "claude-haiku-4-5"
NO_BATCHES = LocalConfig(batches=False)


@pytest.fixture
def served(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    s = start_server(local_api, tmp_path / "ledger.db", kind="anthropic")
    try:
        yield s
    finally:
        s.stop()


def requests(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"q-{i}",
             "params": {"model": MODEL, "max_tokens": 64,
                        "messages": [{"role": "user", "content": f"Question {i}."}]}}
            for i in range(n)]


def bound_usd(reqs: list[dict[str, Any]], *, batch: bool) -> float:
    return total([worst_case(r["params"], len(json.dumps(r["params"]).encode()),
                             local=False, batch=batch) for r in reqs], batch=batch).usd


def retrieve(base_url: str, secret: str, batch_id: str) -> httpx.Response:
    return httpx.get(f"{base_url}/v1/messages/batches/{batch_id}", timeout=10,
                     headers={"x-api-key": secret, "anthropic-version": "2023-06-01"})


@pytest.mark.parametrize("local_api", [NO_BATCHES], indirect=True)
def test_a_batch_goes_realtime_once_at_the_realtime_price(served: Served) -> None:
    store = served.agent.store
    _, secret = store.create_key("app", budget_usd=1.0)
    client = anthropic.Anthropic(base_url=served.base_url, api_key=secret, max_retries=0)
    reqs = requests(3)
    first = client.messages.batches.with_raw_response.create(requests=reqs)
    assert first.headers["laneway-mode"] == "native"  # not known yet
    batch = first.parse()
    wait_for(lambda: retrieve(served.base_url, secret, batch.id).json()[
        "processing_status"] == "ended", timeout_s=30, what="the batch to end")
    answer = retrieve(served.base_url, secret, batch.id)
    assert answer.headers["laneway-mode"] == "realtime"
    assert answer.json()["request_counts"]["succeeded"] == 3
    assert served.local.api.stats["ok"] == 3  # sent realtime, each once
    time.sleep(0.5)
    with store.engine.connect() as conn:
        tried = conn.execute(select(S.batches.c.status).where(
            S.batches.c.run_id == batch.id)).scalars().all()
        row = conn.execute(select(S.gateway_batches).where(
            S.gateway_batches.c.id == batch.id)).mappings().one()
        worst = conn.scalar(select(S.gateway_requests.c.worst_usd).where(
            S.gateway_requests.c.batch_id == batch.id))
    assert tried == ["lost"]  # one create, answered 404: no loop
    assert row["mode"] == "realtime" and "no Message Batches" in row["plan"]
    plans = store.events_since(batch.id, kind="plan")
    assert plans[-1]["data"]["mode"] == "realtime"
    assert worst == pytest.approx(bound_usd(reqs, batch=False))  # not the batch price
    assert worst > bound_usd(reqs, batch=True)
    # The next batch is planned realtime from its create.
    second = client.messages.batches.with_raw_response.create(requests=requests(1))
    assert second.headers["laneway-mode"] == "realtime"


@pytest.mark.parametrize("local_api", [NO_BATCHES], indirect=True)
def test_a_budget_that_cannot_take_the_realtime_price_errors_the_requests(
        served: Served) -> None:
    store = served.agent.store
    reqs = requests(3)
    between = (bound_usd(reqs, batch=True) + bound_usd(reqs, batch=False)) / 2
    _, secret = store.create_key("tight", budget_usd=between)
    client = anthropic.Anthropic(base_url=served.base_url, api_key=secret, max_retries=0)
    batch = client.messages.batches.create(requests=reqs)
    wait_for(lambda: retrieve(served.base_url, secret, batch.id).json()[
        "processing_status"] == "ended", timeout_s=30, what="the batch to end")
    assert retrieve(served.base_url, secret, batch.id).json()["request_counts"][
        "errored"] == 3
    assert served.local.api.stats["requests"] == 0  # nothing sent
    results = list(client.messages.batches.results(batch.id))
    assert all("budget" in str(r.result) for r in results)
