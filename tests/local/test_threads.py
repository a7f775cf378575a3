"""Message threads (beta) against the local API, through the official SDK's own thread
helpers and raw ``create`` calls: the server holds the conversation, and each rejection
the SDK recovers from comes back where the API would send it, in the API's shape."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic
import anthropic.types
import httpx2
import pytest
from anthropic.types.beta import BetaMessageParam

from laneway.local import LocalConfig, RunningLocal, start_local

from .helpers import MODEL, PROMPT, RecordingEngine, text_of, wait_ended

if not hasattr(anthropic.types, "ThreadNotFoundError"):  # SDKs before 2.17 send no threads
    pytest.skip("this SDK has no message threads", allow_module_level=True)

from anthropic.types import (
    ThreadAlreadyContinuedError,
    ThreadContinueInFlightError,
    ThreadNotFoundError,
    ThreadUnsupportedRequestError,
)

SYSTEM = "You are a support agent. Keep replies short."
ONE: BetaMessageParam = {"role": "user", "content": "Where is my order?"}
TWO: BetaMessageParam = {"role": "user", "content": "It is order 4821."}
CONTINUE = {"type": "continue", "previous_message_id": "msg_01unknown"}


@pytest.fixture
def held(request: pytest.FixtureRequest) -> Iterator[tuple[RunningLocal, RecordingEngine]]:
    """A local API over a recording echo engine (config from ``local_config``)."""
    marker = request.node.get_closest_marker("local_config")
    engine = RecordingEngine()
    running = start_local(LocalConfig(**(marker.kwargs if marker else {})), engine=engine)
    try:
        yield running, engine
    finally:
        running.stop(wait=False)


@pytest.fixture
async def sdk(held: tuple[RunningLocal, RecordingEngine]) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=held[0].base_url, api_key="k",
                                        max_retries=0) as c:
        yield c


def _continue(previous: str) -> Any:
    return {"type": "continue", "previous_message_id": previous}


async def test_a_continue_is_answered_from_the_held_conversation(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    running, engine = held
    thread = sdk.beta.messages.thread(model=MODEL, max_tokens=50, system=SYSTEM)
    first = await thread.send(ONE)
    second = await thread.send(TWO)
    assert running.api.stats["thread_creates"] == 1
    assert running.api.stats["thread_continues"] == 1
    assert thread.previous_message_id == second.id != first.id
    # The engine saw the whole conversation, system prompt included, though the second
    # request sent only TWO.
    prompt = engine.prompts[-1]
    assert prompt.system == SYSTEM
    assert prompt.turns == (("user", ONE["content"]), ("assistant", text_of(first)),
                            ("user", TWO["content"]))
    whole = await sdk.messages.count_tokens(
        model=MODEL, system=SYSTEM,
        messages=[ONE, {"role": "assistant", "content": text_of(first)}, TWO])
    assert second.usage.input_tokens == whole.input_tokens  # billed for all of it


async def test_a_streamed_turn_is_held_under_its_message_start_id(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    running, engine = held
    thread = sdk.beta.messages.thread(model=MODEL, max_tokens=50)
    async with thread.stream(ONE) as stream:
        streamed = "".join([text async for text in stream.text_stream])
    reply = await thread.send(TWO)
    assert streamed == ONE["content"] and text_of(reply) == TWO["content"]
    assert running.api.stats["thread_continues"] == 1
    assert engine.prompts[-1].turns[1] == ("assistant", streamed)


async def test_rejections_carry_the_error_code_the_sdk_recovers_by(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    with pytest.raises(ThreadNotFoundError) as missing:
        await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                       thread=CONTINUE)  # type: ignore[arg-type]
    assert missing.value.status_code == 404
    assert missing.value.body["error"]["details"] == {"error_code": "thread_not_found"}
    assert missing.value.response.headers["request-id"] == missing.value.body["request_id"]
    first = await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[ONE],
                                           thread={"type": "create"})
    await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                   thread=_continue(first.id))
    with pytest.raises(ThreadAlreadyContinuedError) as again:
        await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                       thread=_continue(first.id))
    assert again.value.status_code == 400
    assert again.value.error_code == "thread_already_continued"


@pytest.mark.local_config(token_ms=20.0)
async def test_a_second_continue_while_one_runs_is_in_flight(
    client: anthropic.AsyncAnthropic,
) -> None:
    sdk = client  # the plain echo engine, slowed down
    first = await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[ONE],
                                           thread={"type": "create"})
    long_turn = asyncio.ensure_future(sdk.beta.messages.create(
        model=MODEL, max_tokens=20, messages=[{"role": "user", "content": PROMPT}],
        thread=_continue(first.id)))
    await asyncio.sleep(0.1)  # it is generating (20 ms a token)
    with pytest.raises(ThreadContinueInFlightError):
        await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                       thread=_continue(first.id))
    assert text_of(await long_turn) == PROMPT


@pytest.mark.parametrize("fault", ["529", "drop-stream", "midstream"])
async def test_a_failed_continue_leaves_its_reply_continuable(
    sdk: anthropic.AsyncAnthropic, fault: str,
) -> None:
    first = await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[ONE],
                                           thread={"type": "create"})
    kind = fault.removesuffix("-stream")
    # A stream cut short: SDK 2.17 raises APIConnectionError, older ones httpx2's own error.
    with pytest.raises((anthropic.APIError, httpx2.TransportError)):
        if fault == "529":
            await sdk.beta.messages.create(
                model=MODEL, max_tokens=50, messages=[TWO], thread=_continue(first.id),
                extra_headers={"x-laneway-fault": kind})
        else:  # cut or ended with an error event before message_stop
            stream = await sdk.beta.messages.create(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": PROMPT}],
                thread=_continue(first.id), stream=True,
                extra_headers={"x-laneway-fault": kind})
            async for _ in stream:
                pass
    reply = await sdk.beta.messages.create(model=MODEL, max_tokens=50, messages=[TWO],
                                           thread=_continue(first.id))
    assert text_of(reply) == TWO["content"]


async def _fault_on_first_attempt_only(request: httpx2.Request) -> None:
    if request.headers.get("x-stainless-retry-count", "0") != "0":
        del request.headers["x-laneway-fault"]


async def test_a_retried_continue_whose_answer_was_lost_is_already_continued(
    held: tuple[RunningLocal, RecordingEngine],
) -> None:
    """No idempotency: a continue was answered (and billed) but its body cut short; the
    SDK's own retry of it is refused, and the thread helper then replays the whole
    conversation as a create, so its caller still gets the answer (billed twice)."""
    running = held[0]
    async with anthropic.AsyncAnthropic(
        base_url=running.base_url, api_key="k", max_retries=1,
        http_client=httpx2.AsyncClient(
            event_hooks={"request": [_fault_on_first_attempt_only]}),
    ) as retrying:
        drop = {"x-laneway-fault": "drop"}
        first = await retrying.beta.messages.create(
            model=MODEL, max_tokens=50, messages=[ONE], thread={"type": "create"})
        with pytest.raises(ThreadAlreadyContinuedError):
            await retrying.beta.messages.create(
                model=MODEL, max_tokens=50, messages=[TWO], thread=_continue(first.id),
                extra_headers=drop)
        assert running.api.completions.completed_after_drop == 1

        thread = retrying.beta.messages.thread(model=MODEL, max_tokens=50)
        await thread.send(ONE)
        reply = await thread.send(TWO, extra_headers=drop)
    assert text_of(reply) == TWO["content"]
    # The helper's turn: the continue (answered, lost), its retry (refused before it
    # counts), the create of the whole conversation (answered, lost: the header stays),
    # its retry (answered).
    assert running.api.stats["thread_continues"] == 1 + 1
    assert running.api.stats["thread_creates"] == 1 + 3
    assert running.api.completions.completed_after_drop == 1 + 2


async def test_continue_after_pause_turn_sends_no_messages_and_resumes(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    engine = held[1]
    thread = sdk.beta.messages.thread(model=MODEL, max_tokens=50)
    paused = await thread.send({"role": "user", "content": PROMPT},
                               extra_headers={"x-laneway-fault": "pause"})
    assert paused.stop_reason == "pause_turn"
    assert PROMPT.startswith(text_of(paused)) and text_of(paused) != PROMPT
    resumed = await thread.send()  # the SDK sends `messages: []`
    assert resumed.stop_reason == "end_turn"
    assert text_of(paused) + text_of(resumed) == PROMPT
    assert engine.prompts[-1].turns[-1] == ("assistant", text_of(paused))


async def test_a_continue_may_not_repeat_system_or_tools(
    sdk: anthropic.AsyncAnthropic,
) -> None:
    first = await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[ONE],
                                           system=SYSTEM, thread={"type": "create"})
    for extra in ({"system": SYSTEM}, {"tools": []}):
        with pytest.raises(anthropic.BadRequestError) as info:
            await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                           thread=_continue(first.id), **extra)
        assert info.value.error_code is None  # no recovery: the caller's mistake
        assert (info.value.api_message or "").startswith(f"{next(iter(extra))}: ")
    for bad, field in (({"type": "fork"}, "thread.type:"),
                       ({"type": "continue"}, "thread.previous_message_id:"),
                       ({"type": "create", "previous_message_id": first.id},
                        "thread.previous_message_id:")):
        with pytest.raises(anthropic.BadRequestError) as info:
            await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                           thread=bad)  # type: ignore[arg-type]
        assert (info.value.api_message or "").startswith(field)


async def test_unsupported_makes_a_runner_go_on_without_a_thread(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    thread = sdk.beta.messages.thread(model=MODEL, max_tokens=5)
    with pytest.raises(ThreadUnsupportedRequestError) as info:
        await thread.send(ONE, thinking={"type": "adaptive"},
                          extra_headers={"x-laneway-fault": "thread_unsupported"})
    assert info.value.body["error"]["details"] == {
        "error_code": "thread_unsupported_request", "unsupported": ["thinking"]}
    runner = sdk.beta.messages.tool_runner(
        model=MODEL, max_tokens=5, tools=[], messages=[ONE],
        extra_headers={"x-laneway-fault": "thread_unsupported"})
    assert [m.stop_reason async for m in runner] == ["max_tokens"]  # sent unthreaded


@pytest.mark.local_config(thread_max_count=2)
async def test_threads_are_bounded_and_an_evicted_one_is_replayed(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    running = held[0]
    oldest = sdk.beta.messages.thread(model=MODEL, max_tokens=50)
    await oldest.send(ONE)
    for _ in range(2):  # two newer threads push the oldest out
        await sdk.beta.messages.thread(model=MODEL, max_tokens=5).send(ONE)
    assert len(running.api.threads) == 2
    reply = await oldest.send(TWO)  # thread_not_found, then the SDK replays it all
    assert text_of(reply) == TWO["content"]
    assert running.api.stats["thread_creates"] == 4


@pytest.mark.local_config(thread_max_bytes=2_000)
async def test_the_bound_counts_bytes(
    sdk: anthropic.AsyncAnthropic, held: tuple[RunningLocal, RecordingEngine],
) -> None:
    running = held[0]
    first = await sdk.beta.messages.create(
        model=MODEL, max_tokens=5, thread={"type": "create"},
        messages=[{"role": "user", "content": "word " * 400}])
    assert len(running.api.threads) == 0 and running.api.threads.bytes == 0
    with pytest.raises(ThreadNotFoundError):
        await sdk.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                       thread=_continue(first.id))


async def test_threads_are_gone_after_a_restart() -> None:
    running = start_local(LocalConfig())
    port = running.base_url.rsplit(":", 1)[1]
    async with anthropic.AsyncAnthropic(base_url=running.base_url, api_key="k",
                                        max_retries=0) as c:
        thread = c.beta.messages.thread(model=MODEL, max_tokens=50)
        first = await thread.send(ONE)
        running.stop()
        running = start_local(LocalConfig(), port=int(port))
        try:
            with pytest.raises(ThreadNotFoundError):
                await c.beta.messages.create(model=MODEL, max_tokens=5, messages=[TWO],
                                             thread=_continue(first.id))
            assert text_of(await thread.send(TWO)) == TWO["content"]  # replayed
        finally:
            running.stop(wait=False)


async def test_thread_in_a_batch_comes_back_errored(sdk: anthropic.AsyncAnthropic) -> None:
    batch = await sdk.messages.batches.create(requests=[{"custom_id": "t", "params": {
        "model": MODEL, "max_tokens": 5, "messages": [ONE],
        "thread": {"type": "create"}}}])  # type: ignore[typeddict-unknown-key]
    await wait_ended(sdk, batch.id)
    [result] = [r async for r in await sdk.messages.batches.results(batch.id)]
    assert result.result.type == "errored"
    assert result.result.error.error.message.startswith("thread: ")
