"""Conversation: streaming turns against the real local API (echo engine) over loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import pytest

from laneway.chat import Conversation
from laneway.cost.prices import Usage, cost_usd
from laneway.errors import OverloadedError
from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.local import RunningLocal
from laneway.local.faults import Fault, FaultPlan
from laneway.provider.client import Provider

LONG = " ".join(f"word{i}" for i in range(60))


class CountingEngine:
    """Wraps the local API's engine to see how much it generated and whether it was cut."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.tokens = 0
        self.finished = 0
        self.cut = 0

    def count_tokens(self, prompt: Any) -> int:
        return int(self.inner.count_tokens(prompt))

    async def generate(self, prompt: Any, params: Any) -> AsyncIterator[str]:
        complete = False
        try:
            async for token in self.inner.generate(prompt, params):
                self.tokens += 1
                yield token
            complete = True
        finally:
            if complete:
                self.finished += 1
            else:
                self.cut += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


def provider_for(local: RunningLocal, kind: str = "local") -> Provider:
    client = anthropic.AsyncAnthropic(base_url=local.base_url, api_key="k", max_retries=0)
    return Provider(client, kind, local.base_url)


@pytest.fixture
async def provider(local_api: RunningLocal) -> AsyncIterator[Provider]:
    p = provider_for(local_api)
    yield p
    await p.aclose()


@pytest.mark.local_config(token_ms=2)
async def test_turns_stream_keep_history_and_measure(provider: Provider) -> None:
    conv = Conversation(provider, model="claude-haiku-4-5")
    deltas: list[str] = []
    first = await conv.send("one two three four five", on_text=deltas.append)
    assert len(deltas) == 5 and "".join(deltas) == first.text == "one two three four five"
    assert first.ttft_s is not None and 0 < first.ttft_s <= first.elapsed_s
    assert first.tokens_per_s is not None and first.tokens_per_s > 0
    assert first.output_tokens == 5 and first.input_tokens > 0
    assert first.cost_usd == 0.0  # the local model is free
    second = await conv.send("six seven")
    assert second.text == "six seven"
    assert second.input_tokens > first.input_tokens  # the history went along
    assert conv.messages == [
        {"role": "user", "content": "one two three four five"},
        {"role": "assistant", "content": "one two three four five"},
        {"role": "user", "content": "six seven"},
        {"role": "assistant", "content": "six seven"},
    ]
    conv.reset()
    assert conv.messages == [] and conv.turns == []


async def test_system_prompt_is_sent(provider: Provider) -> None:
    plain = await Conversation(provider).send("hello")
    with_system = await Conversation(provider, system="You are terse and precise.").send("hello")
    assert with_system.input_tokens > plain.input_tokens


async def test_cost_per_turn_and_unknown_model(local_api: RunningLocal) -> None:
    priced = provider_for(local_api, kind="anthropic")  # priced as the real API would be
    try:
        turn = await Conversation(priced, model="claude-haiku-4-5").send("price me")
        assert turn.cost_usd == pytest.approx(
            cost_usd("claude-haiku-4-5", Usage.from_api(turn.usage)))
        assert turn.cost_usd > 0
        unknown = await Conversation(priced, model="mystery-model").send("price me")
        assert unknown.cost_usd is None  # never silently zero
        conv = Conversation(priced, model="mystery-model")
        await conv.send("x")
        assert conv.as_json()["cost_usd"] is None
    finally:
        await priced.aclose()


@pytest.mark.local_config(token_ms=20)
async def test_cancel_stops_upstream_and_keeps_no_half_answer(
        local_api: RunningLocal, provider: Provider) -> None:
    engine = CountingEngine(local_api.api.engine)
    local_api.api.engine = engine
    conv = Conversation(provider)
    await conv.send("before")
    got: list[str] = []
    arriving = asyncio.Event()

    def on_text(delta: str) -> None:
        got.append(delta)
        if len(got) >= 3:
            arriving.set()

    task = asyncio.create_task(conv.send(LONG, on_text=on_text))
    await asyncio.wait_for(arriving.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)
    assert engine.cut == 1 and engine.finished == 1  # "before" finished, LONG was cut
    produced = engine.tokens
    await asyncio.sleep(0.2)
    assert engine.tokens == produced < 1 + 60  # nothing more is generated upstream
    assert conv.messages == [{"role": "user", "content": "before"},
                             {"role": "assistant", "content": "before"}]
    assert conv.last_partial.startswith("word0 word1")
    assert len(conv.turns) == 1


class _FirstFails(FaultPlan):
    def __init__(self, kinds: list[str]) -> None:
        super().__init__({})
        self.kinds = kinds

    def draw(self, forced: str | None = None) -> Fault | None:
        return Fault(self.kinds.pop(0)) if self.kinds else None


async def test_retries_a_failure_before_any_text(local_api: RunningLocal,
                                                 provider: Provider) -> None:
    local_api.api.faults = _FirstFails(["529", "500"])
    conv = Conversation(provider, backoff_s=0.01)
    turn = await conv.send("third time lucky")
    assert turn.text == "third time lucky" and turn.attempts == 3


async def test_gives_up_after_retries_and_after_text(local_api: RunningLocal,
                                                     provider: Provider) -> None:
    local_api.api.faults = _FirstFails(["529", "529", "529"])
    conv = Conversation(provider, backoff_s=0.01, retries=2)
    with pytest.raises(OverloadedError):
        await conv.send("never")
    # An overloaded error mid-stream, after text was shown: not retried, not kept.
    local_api.api.faults = _FirstFails(["midstream"])
    got: list[str] = []
    with pytest.raises(OverloadedError):
        await conv.send("a b c d e f", on_text=got.append)
    assert got and conv.messages == []


async def test_interactive_lane_of_the_governor(provider: Provider) -> None:
    governor = Governor()
    conv = Conversation(provider, governor=governor)
    await conv.send("through the governor")
    state = governor.snapshot()["claude-haiku-4-5"]
    assert state["sent"]["requests"] == 1
    assert state["in_flight"] == {Lane.INTERACTIVE.value: 0, Lane.BACKGROUND.value: 0}


async def test_save_writes_json(provider: Provider, tmp_path: Path) -> None:
    conv = Conversation(provider, system="sys")
    await conv.send("keep me")
    path = conv.save(tmp_path / "conv.json")
    data = json.loads(path.read_text())
    assert data["system"] == "sys"
    assert data["messages"][1] == {"role": "assistant", "content": "keep me"}
    assert data["turns"][0]["usage"]["output_tokens"] == 2
