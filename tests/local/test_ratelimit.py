"""Simulated rate limits: the anthropic-ratelimit-* headers, 429s with retry-after, and
the accuracy of the requests bucket under a client that sends as fast as it can."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import anthropic
import httpx2
import pytest

from laneway.local import RunningLocal

from .helpers import MODEL, PROMPT, user

KINDS = ("requests", "input-tokens", "output-tokens", "tokens")


def ratelimit(headers: httpx2.Headers, kind: str) -> tuple[int, int, float]:
    """(limit, remaining, reset as a UNIX time) of one bucket's headers."""
    prefix = f"anthropic-ratelimit-{kind}"
    reset = datetime.fromisoformat(headers[f"{prefix}-reset"].replace("Z", "+00:00"))
    assert reset.tzinfo is not None
    return int(headers[f"{prefix}-limit"]), int(headers[f"{prefix}-remaining"]), reset.timestamp()


@pytest.mark.local_config(rpm=50, itpm=30_000, otpm=8_000)
async def test_headers_are_present_and_consistent(client: anthropic.AsyncAnthropic) -> None:
    before = time.time()
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT))
    message = await raw.parse()
    after = time.time()

    req_limit, req_left, req_reset = ratelimit(raw.headers, "requests")
    assert (req_limit, req_left) == (50, 49)
    # One request refills in 60/50 s; the bucket is full again then.
    assert before + 1.0 <= req_reset <= after + 1.2 + 0.5

    in_limit, in_left, in_reset = ratelimit(raw.headers, "input-tokens")
    out_limit, out_left, out_reset = ratelimit(raw.headers, "output-tokens")
    assert (in_limit, out_limit) == (30_000, 8_000)
    # Token counts are exact (not rounded down to thousands, which made 5 used of 30,000
    # read 29,000). The buckets refill continuously: at most a token or two came back.
    assert 0 <= in_left - (30_000 - message.usage.input_tokens) <= 2
    assert 0 <= out_left - (8_000 - message.usage.output_tokens) <= 2
    assert in_left % 1000 and out_left % 1000
    assert before <= in_reset <= after + 60 and before <= out_reset <= after + 60

    # "tokens" describes the most restrictive token bucket: here the output one.
    assert ratelimit(raw.headers, "tokens") == (out_limit, out_left, out_reset)

    second = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=100, messages=user(PROMPT))
    assert ratelimit(second.headers, "requests")[1] == 48


@pytest.mark.local_config(itpm=30_000, otpm=1_000)
async def test_tokens_headers_describe_the_bucket_with_fewest_remaining(
    client: anthropic.AsyncAnthropic,
) -> None:
    """A long prompt empties a larger share of the input bucket, but the output bucket
    still has fewer tokens left: ``tokens-*`` describe the output bucket, all three
    headers from it, on every response."""
    long_prompt = " ".join(["word"] * 600)
    for _ in range(3):
        raw = await client.messages.with_raw_response.create(
            model=MODEL, max_tokens=3, messages=user(long_prompt))
        limit_in, left_in, _ = ratelimit(raw.headers, "input-tokens")
        out = ratelimit(raw.headers, "output-tokens")
        assert left_in / limit_in < out[1] / out[0]  # input is the more depleted share
        assert left_in > out[1]  # ... but output has fewer tokens left
        assert ratelimit(raw.headers, "tokens") == out


@pytest.mark.local_config(rpm=2)
async def test_retry_after_is_the_buckets_refill_time(client: anthropic.AsyncAnthropic) -> None:
    """2 RPM: one request comes back every 30 s, so the third request is told 30."""
    for _ in range(2):
        await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    headers = info.value.response.headers
    assert headers["retry-after"] == "30"
    _, remaining, reset = ratelimit(headers, "requests")
    assert remaining == 0
    assert 59 <= reset - time.time() <= 60.5  # full again after two refills


@pytest.mark.local_config(rpm=60)
async def test_waiting_retry_after_is_enough(client: anthropic.AsyncAnthropic) -> None:
    """60 RPM refills one request a second: after a 429, waiting ``retry-after`` seconds
    (rounded up, never down) is enough for the next request to pass."""
    sent = 0
    while True:  # drain the starting burst (60, and what refills meanwhile)
        try:
            await client.messages.create(model=MODEL, max_tokens=1, messages=user("hi"))
        except anthropic.RateLimitError as err:
            retry_after = int(err.response.headers["retry-after"])
            break
        sent += 1
    assert sent >= 60
    assert retry_after == 1
    await asyncio.sleep(retry_after)
    await client.messages.create(model=MODEL, max_tokens=1, messages=user("hi"))


@pytest.mark.local_config(rpm=50, itpm=30_000, otpm=8_000)
async def test_headers_come_on_every_response(client: anthropic.AsyncAnthropic) -> None:
    responses: list[httpx2.Headers] = []
    async with client.messages.with_streaming_response.create(
        model=MODEL, max_tokens=5, messages=user("hi"), stream=True
    ) as streamed:
        responses.append(streamed.headers)
    responses.append((await client.messages.with_raw_response.count_tokens(
        model=MODEL, messages=user("hi"))).headers)
    responses.append((await client.messages.batches.with_raw_response.list()).headers)
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=MODEL, max_tokens=-1, messages=user("hi"))
    responses.append(info.value.response.headers)
    with pytest.raises(anthropic.NotFoundError) as not_found:
        await client.messages.batches.retrieve("msgbatch_missing")
    responses.append(not_found.value.response.headers)
    for headers in responses:
        for kind in KINDS:
            limit, remaining, _ = ratelimit(headers, kind)
            assert 0 <= remaining <= limit


async def test_no_limits_no_headers(client: anthropic.AsyncAnthropic) -> None:
    raw = await client.messages.with_raw_response.create(
        model=MODEL, max_tokens=5, messages=user("hi"))
    assert not [name for name in raw.headers if name.startswith("anthropic-ratelimit-")]
    assert "retry-after" not in raw.headers


@pytest.mark.local_config(rpm=3)
async def test_requests_bucket_answers_429_with_retry_after(
    client: anthropic.AsyncAnthropic, local_api: RunningLocal
) -> None:
    for _ in range(3):
        await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model=MODEL, max_tokens=5, messages=user("hi"))
    err = info.value
    assert err.type == "rate_limit_error"
    assert "3 requests per minute" in (err.api_message or "")
    assert err.response.headers["request-id"] == err.request_id == err.body["request_id"]  # type: ignore[index]
    # 3 RPM refills one request every 20 s.
    assert 1 <= int(err.response.headers["retry-after"]) <= 20
    assert ratelimit(err.response.headers, "requests")[:2] == (3, 0)
    assert local_api.api.stats["rate_limited"] == 1
    assert local_api.api.stats["ok"] == 3


@pytest.mark.local_config(itpm=100)
async def test_input_tokens_bucket(client: anthropic.AsyncAnthropic) -> None:
    words = " ".join(["word"] * 60)
    await client.messages.create(model=MODEL, max_tokens=1, messages=user(words))
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model=MODEL, max_tokens=1, messages=user(words))
    assert "100 input tokens per minute" in (info.value.api_message or "")
    retry_after = int(info.value.response.headers["retry-after"])
    # 63 tokens needed, 37 left, 100/60 tokens a second come back: about 16 s.
    assert 10 <= retry_after <= 20
    # Exactly what is left (it read 0 when rounded down to thousands).
    assert ratelimit(info.value.response.headers, "input-tokens")[1] in (37, 38)


@pytest.mark.local_config(otpm=5)
async def test_output_tokens_bucket_goes_into_debt(client: anthropic.AsyncAnthropic) -> None:
    # The first answer (10 tokens) is allowed and leaves the bucket in debt.
    await client.messages.create(model=MODEL, max_tokens=100, messages=user(PROMPT))
    with pytest.raises(anthropic.RateLimitError) as info:
        await client.messages.create(model=MODEL, max_tokens=100, messages=user(PROMPT))
    assert "5 output tokens per minute" in (info.value.api_message or "")
    assert int(info.value.response.headers["retry-after"]) >= 60


@pytest.mark.timing
@pytest.mark.local_config(rpm=1200)
async def test_sustained_rate_matches_rpm(client: anthropic.AsyncAnthropic) -> None:
    """The accuracy claim, scaled down: under --rpm 1200 a client sending as fast as it can
    gets 1200/60 = 20 successful requests a second (100 in 5 s), within 5%."""
    rate_per_s = 1200 / 60
    window_s = 5.0
    rejected_without_retry_after = 0

    async def one() -> bool:
        nonlocal rejected_without_retry_after
        try:
            await client.messages.create(model=MODEL, max_tokens=1, messages=user("hi"))
        except anthropic.RateLimitError as err:
            if not err.response.headers.get("retry-after", "").isdigit():
                rejected_without_retry_after += 1
            return False
        return True

    # Drain the minute's burst first: the bucket starts full.
    drained = 0
    while True:
        results = await asyncio.gather(*(one() for _ in range(32)))
        drained += sum(results)
        if not all(results):
            break
    assert drained >= 1200

    ok = 0
    started = time.monotonic()
    deadline = started + window_s

    async def sender() -> None:
        nonlocal ok
        while time.monotonic() < deadline:
            if await one() and time.monotonic() <= deadline:
                ok += 1

    await asyncio.gather(*(sender() for _ in range(6)))
    expected = rate_per_s * window_s
    assert abs(ok - expected) <= 0.05 * expected, f"{ok} successes, expected {expected:g}"
    assert rejected_without_retry_after == 0
