"""The Message Batches API of the local server, call by call, through the official SDK."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import anthropic
import httpx2
import pytest

from laneway.errors import ConfigError
from laneway.local import LocalConfig, RunningLocal
from laneway.local.app import create_app

from .helpers import MODEL, PROMPT, text_of, user, wait_ended

DAY = timedelta(hours=24)


def request(custom_id: str, **params: Any) -> dict[str, Any]:
    return {"custom_id": custom_id,
            "params": {"model": MODEL, "max_tokens": 100, "messages": user(PROMPT), **params}}


async def test_create_retrieve_and_results(client: anthropic.AsyncAnthropic) -> None:
    requests = [
        request("ok-1"),
        request("ok_2", max_tokens=2),
        {"custom_id": "no-max-tokens", "params": {"model": MODEL, "messages": user("hi")}},
        request("streams", stream=True),
    ]
    batch = await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert batch.results_url is None and batch.ended_at is None
    assert batch.request_counts.processing == 4
    assert batch.expires_at - batch.created_at == DAY

    ended = await wait_ended(client, batch.id)
    assert ended.id == batch.id and ended.created_at == batch.created_at
    assert ended.ended_at is not None and ended.ended_at >= ended.created_at
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.canceled,
            counts.expired) == (0, 2, 2, 0, 0)
    base_url = str(client.base_url).rstrip("/")
    assert ended.results_url == f"{base_url}/v1/messages/batches/{batch.id}/results"

    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert set(results) == {"ok-1", "ok_2", "no-max-tokens", "streams"}
    ok1, ok2 = results["ok-1"], results["ok_2"]
    assert ok1.type == "succeeded" and ok2.type == "succeeded"
    direct = await client.messages.create(model=MODEL, max_tokens=100, messages=user(PROMPT))
    assert text_of(ok1.message) == text_of(direct) == PROMPT
    assert ok1.message.usage.input_tokens == direct.usage.input_tokens
    assert ok1.message.usage.output_tokens == direct.usage.output_tokens
    assert ok1.message.id.startswith("msg_")
    assert (text_of(ok2.message), ok2.message.stop_reason) == ("The quick", "max_tokens")
    for cid, field in (("no-max-tokens", "max_tokens"), ("streams", "stream")):
        errored = results[cid]
        assert errored.type == "errored"
        assert errored.error.type == "error"
        assert errored.error.error.type == "invalid_request_error"
        assert errored.error.error.message.startswith(f"{field}:")


async def test_results_file_is_jsonl_without_blank_lines(
    client: anthropic.AsyncAnthropic,
) -> None:
    batch = await client.messages.batches.create(
        requests=[request(f"r{i}") for i in range(3)])  # type: ignore[misc]
    ended = await wait_ended(client, batch.id)
    assert ended.results_url is not None
    raw = await client.get(ended.results_url, cast_to=httpx2.Response)
    lines = raw.text.splitlines()
    assert len(lines) == 3 and all(line.strip() for line in lines)
    assert "\n\n" not in raw.text


@pytest.mark.local_config(batch_min_s=1.0)
async def test_counts_stay_zero_until_the_batch_ends_and_delete_waits(
    client: anthropic.AsyncAnthropic,
) -> None:
    batch = await client.messages.batches.create(
        requests=[request(f"r{i}") for i in range(3)])  # type: ignore[misc]
    await asyncio.sleep(0.2)  # every request is done by now; the batch is held open
    running = await client.messages.batches.retrieve(batch.id)
    assert running.processing_status == "in_progress"
    counts = running.request_counts
    assert (counts.processing, counts.succeeded, counts.errored) == (3, 0, 0)
    assert running.results_url is None
    with pytest.raises(anthropic.AnthropicError, match="results_url"):
        await client.messages.batches.results(batch.id)
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.delete(batch.id)
    assert info.value.type == "invalid_request_error"

    ended = await wait_ended(client, batch.id)
    assert ended.request_counts.succeeded == 3 and ended.request_counts.processing == 0
    deleted = await client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.retrieve(batch.id)
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.batches.delete(batch.id)


@pytest.mark.local_config(token_ms=20, batch_concurrency=1)
async def test_cancel_a_running_batch(client: anthropic.AsyncAnthropic) -> None:
    # Ten requests of ten tokens each, one at a time: about two seconds of work.
    batch = await client.messages.batches.create(
        requests=[request(f"r{i}") for i in range(10)])  # type: ignore[misc]
    await asyncio.sleep(0.1)
    canceling = await client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert canceling.request_counts.processing == 10

    ended = await wait_ended(client, batch.id, timeout_s=5)
    counts = ended.request_counts
    assert counts.canceled >= 5  # the cancel came after about one request
    assert counts.succeeded + counts.canceled == 10
    assert counts.processing == counts.errored == counts.expired == 0
    assert ended.cancel_initiated_at == canceling.cancel_initiated_at
    types = [r.result.type async for r in await client.messages.batches.results(batch.id)]
    assert sorted(types) == sorted(["canceled"] * counts.canceled
                                   + ["succeeded"] * counts.succeeded)
    # Canceling an ended batch changes nothing.
    again = await client.messages.batches.cancel(batch.id)
    assert again.processing_status == "ended" and again.request_counts == counts


@pytest.mark.local_config(batch_time_scale=1 / 86_400, token_ms=30, batch_concurrency=1)
async def test_unfinished_requests_expire(client: anthropic.AsyncAnthropic) -> None:
    """With 24 h scaled to 1 s, requests that take 0.3 s each, one at a time, do not all
    finish: the rest come back expired."""
    batch = await client.messages.batches.create(
        requests=[request(f"r{i}") for i in range(8)])  # type: ignore[misc]
    assert batch.expires_at - batch.created_at == timedelta(seconds=1)
    ended = await wait_ended(client, batch.id, timeout_s=5)
    assert ended.ended_at is not None and ended.ended_at >= ended.expires_at
    counts = ended.request_counts
    assert counts.succeeded >= 1 and counts.expired >= 1
    assert counts.succeeded + counts.expired == 8
    assert counts.processing == counts.errored == counts.canceled == 0
    results = [r async for r in await client.messages.batches.results(batch.id)]
    by_type: dict[str, int] = {}
    for r in results:
        by_type[r.result.type] = by_type.get(r.result.type, 0) + 1
        if r.result.type == "succeeded":
            assert text_of(r.result.message) == PROMPT
    assert by_type == {"succeeded": counts.succeeded, "expired": counts.expired}


async def test_list_pages_newest_first(client: anthropic.AsyncAnthropic) -> None:
    empty = await client.messages.batches.list()
    assert (empty.data, empty.has_more, empty.first_id, empty.last_id) == ([], False, None, None)

    created = [
        (await client.messages.batches.create(requests=[request("only")])).id  # type: ignore[list-item]
        for _ in range(5)
    ]
    newest = created[::-1]

    def ids(page: Any) -> list[str]:
        return [b.id for b in page.data]

    first = await client.messages.batches.list(limit=2)
    assert ids(first) == newest[:2] and first.has_more
    assert (first.first_id, first.last_id) == (newest[0], newest[1])
    second = await client.messages.batches.list(limit=2, after_id=newest[1])
    assert ids(second) == newest[2:4] and second.has_more
    assert (second.first_id, second.last_id) == (newest[2], newest[3])
    third = await client.messages.batches.list(limit=2, after_id=newest[3])
    assert ids(third) == newest[4:] and not third.has_more
    assert third.first_id == third.last_id == newest[4]

    back = await client.messages.batches.list(limit=2, before_id=newest[4])
    assert ids(back) == newest[2:4] and back.has_more
    assert back.first_id == newest[2]
    back_again = await client.messages.batches.list(limit=2, before_id=newest[2])
    assert ids(back_again) == newest[:2] and not back_again.has_more

    everything = await client.messages.batches.list()
    assert ids(everything) == newest and not everything.has_more
    # The SDK's auto-pagination follows after_id to the end.
    assert [b.id async for b in client.messages.batches.list(limit=2)] == newest
    assert [b.id async for b in client.messages.batches.list(limit=2, before_id=newest[4])] == [
        *newest[2:4], *newest[:2]]


@pytest.mark.parametrize(
    "custom_id", ["", "a" * 65, "has space", "dot.ted", "slash/ed", "ünï", "new\nline"]
)
async def test_custom_id_must_match_the_pattern(
    client: anthropic.AsyncAnthropic, custom_id: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.create(
            requests=[request("fine"), request(custom_id)])  # type: ignore[list-item]
    assert info.value.type == "invalid_request_error"
    assert (info.value.api_message or "").startswith("requests.1.custom_id:")
    assert "^[a-zA-Z0-9_-]{1,64}$" in (info.value.api_message or "")


async def test_custom_id_edge_cases_that_are_valid(client: anthropic.AsyncAnthropic) -> None:
    batch = await client.messages.batches.create(
        requests=[request("a" * 64), request("A-z_09"), request("0")])  # type: ignore[list-item]
    ended = await wait_ended(client, batch.id)
    assert ended.request_counts.succeeded == 3


async def test_custom_id_must_be_unique(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.create(
            requests=[request("same"), request("other"), request("same")])  # type: ignore[list-item]
    message = info.value.api_message or ""
    assert message.startswith("requests.2.custom_id:") and "unique" in message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "requests: Field required"),
        ({"requests": []}, "requests:"),
        ({"requests": "many"}, "requests:"),
        ({"requests": [{"custom_id": "x"}]}, "requests.0.params: Field required"),
        ({"requests": [{"params": {}}]}, "requests.0.custom_id:"),
        ({"requests": [3]}, "requests.0:"),
    ],
)
async def test_create_body_is_validated(
    client: anthropic.AsyncAnthropic, body: dict[str, Any], expected: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.post("/v1/messages/batches", body=body, cast_to=httpx2.Response)
    assert (info.value.api_message or "").startswith(expected)


async def test_at_most_100_000_requests(client: anthropic.AsyncAnthropic) -> None:
    requests = [{"custom_id": f"r{i}", "params": {}} for i in range(100_001)]
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    assert (info.value.api_message or "").startswith("requests:")
    assert "100000" in (info.value.api_message or "")

    batch = await client.messages.batches.create(requests=requests[:100_000])  # type: ignore[arg-type]
    assert batch.request_counts.processing == 100_000
    await client.messages.batches.cancel(batch.id)
    ended = await wait_ended(client, batch.id)
    counts = ended.request_counts
    # Each of these ``params`` is invalid: whatever ran before the cancel errored.
    assert counts.errored + counts.canceled == 100_000
    assert counts.canceled > 0


async def test_results_url_ignores_the_host_header(
    client: anthropic.AsyncAnthropic, local_api: RunningLocal
) -> None:
    """Behind a proxy the request's Host is the proxy's upstream view; ``results_url``
    is built from the address the server listens on instead."""
    batch = await client.messages.batches.create(requests=[request("r")])  # type: ignore[list-item]
    await wait_ended(client, batch.id)
    proxied = await client.messages.batches.retrieve(
        batch.id, extra_headers={"host": "upstream.invalid:9999"})
    assert proxied.results_url == (
        f"{local_api.base_url}/v1/messages/batches/{batch.id}/results")
    listed = await client.messages.batches.list(extra_headers={"host": "upstream.invalid:9999"})
    assert listed.data[0].results_url == proxied.results_url


@pytest.mark.local_config(public_url="http://proxy.invalid:8443/anthropic/")
async def test_results_url_is_built_on_the_public_url(
    client: anthropic.AsyncAnthropic,
) -> None:
    batch = await client.messages.batches.create(requests=[request("r")])  # type: ignore[list-item]
    ended = await wait_ended(client, batch.id)
    assert ended.results_url == (
        f"http://proxy.invalid:8443/anthropic/v1/messages/batches/{batch.id}/results")


def test_public_url_without_a_scheme_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--public-url"):
        create_app(LocalConfig(public_url="proxy:8443"))
