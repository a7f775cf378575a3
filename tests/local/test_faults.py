"""Fault rates: deterministic under a seed, and close to the rates asked for."""

from __future__ import annotations

from collections import Counter

import anthropic
import httpx2
from anthropic.types import Message

from laneway.local import LocalConfig, serve_local

from .helpers import MODEL, PROMPT, text_of, user

SPEC = "529=0.15,500=0.1,429=0.1,drop=0.1,midstream=0.1"


async def outcome(client: anthropic.AsyncAnthropic, *, stream: bool) -> str:
    """What one request came to, as a short label."""
    message: Message
    try:
        if stream:
            async with client.messages.stream(
                model=MODEL, max_tokens=100, messages=user(PROMPT)
            ) as s:
                message = await s.get_final_message()
        else:
            message = await client.messages.create(
                model=MODEL, max_tokens=100, messages=user(PROMPT))
    except anthropic.APIStatusError as err:
        return f"{err.status_code}:{err.type}"
    except (anthropic.APIConnectionError, httpx2.TransportError):
        return "dropped"
    assert text_of(message) == PROMPT
    return "ok"


async def run_sequence(config: LocalConfig, n: int) -> list[str]:
    """Send ``n`` requests one after the other (every third one streamed)."""
    with serve_local(config) as base_url:
        async with anthropic.AsyncAnthropic(
            base_url=base_url, api_key="k", max_retries=0
        ) as client:
            return [await outcome(client, stream=i % 3 == 2) for i in range(n)]


async def test_same_seed_gives_the_same_faults() -> None:
    first = await run_sequence(LocalConfig(faults=SPEC, seed=7), 60)
    second = await run_sequence(LocalConfig(faults=SPEC, seed=7), 60)
    assert first == second
    # The sequence really has faults of several kinds, and successes.
    kinds = Counter(first)
    assert kinds["ok"] >= 10
    assert {"529:overloaded_error", "500:api_error", "429:rate_limit_error", "dropped",
            "200:overloaded_error"} <= set(kinds)
    other = await run_sequence(LocalConfig(faults=SPEC, seed=8), 60)
    assert other != first


async def test_fault_rates_are_close_to_the_spec() -> None:
    n = 300
    outcomes = Counter(await run_sequence(LocalConfig(faults="529=0.3,500=0.1", seed=1), n))
    assert set(outcomes) <= {"ok", "529:overloaded_error", "500:api_error"}
    assert 0.2 * n <= outcomes["529:overloaded_error"] <= 0.4 * n
    assert 0.04 * n <= outcomes["500:api_error"] <= 0.16 * n
    assert 0.5 * n <= outcomes["ok"] <= 0.7 * n


async def test_no_faults_without_a_spec() -> None:
    outcomes = await run_sequence(LocalConfig(seed=3), 30)
    assert outcomes == ["ok"] * 30
