"""``POST /v1/messages``: one request answered, whole (JSON) or streamed (SSE).

The order is the API's: the thread (a ``continue`` brings back the held conversation,
see :mod:`laneway.local.threads`), the body's validation, the fault drawn for the
request, the prompt's size, the prompt cache, the rate limits, then generation. A
threaded turn is held once its answer is complete (a JSON answer, or a stream that
reached its end), and released on any failure, so its previous reply stays continuable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi.responses import JSONResponse, Response, StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

from laneway.local import models, structured
from laneway.local.cache import CacheUsage, PromptCache
from laneway.local.completions import Completions
from laneway.local.config import LocalConfig
from laneway.local.engines import Engine
from laneway.local.faults import Fault, FaultPlan
from laneway.local.generation import (
    Outcome,
    answering_model,
    check_request,
    complete,
    content_of,
    delta_usage,
    generate,
    message_json,
)
from laneway.local.ratelimit import RateLimiter
from laneway.local.threads import ThreadStore, ThreadTurn, thread_error
from laneway.local.validation import MessageParams, validate_message, with_tool_call
from laneway.wire.errors import APIError, error_body
from laneway.wire.ids import new_id

#: Tokens a turn is cut after by the ``pause`` fault (``stop_reason: "pause_turn"``).
PAUSE_AFTER_TOKENS = 2
#: Request fields the SDK's ``thread_unsupported_request`` may name (``unsupported``).
_THREAD_FEATURES = ("cache_control", "context_management", "fallbacks", "thinking")


class DroppedConnection(Exception):
    """Raised inside a response to cut the connection (the ``drop`` fault)."""


def _sse(event: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event, separators=(",", ":")), event=event["type"], sep="\n"
    )


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated request on its way to an answer."""

    params: MessageParams
    input_tokens: int
    cache: CacheUsage
    fault: str | None
    turn: ThreadTurn | None


class _Streamed(EventSourceResponse):
    """A stream whose thread turn is released even if it never starts (the client left
    between the answer and its first byte): a started stream holds or releases it
    itself, and a second call does nothing."""

    def __init__(self, events: AsyncIterator[ServerSentEvent], on_close: Callable[[], None],
                 **kwargs: Any) -> None:
        super().__init__(events, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._on_close()


class LocalState(Protocol):
    """The local API's state answering reads, each time anew: a test may swap the engine
    or the fault plan of a running server (``laneway.local.app.LocalAPI`` is one)."""

    config: LocalConfig
    engine: Engine
    limits: RateLimiter
    cache: PromptCache
    faults: FaultPlan
    threads: ThreadStore
    stats: dict[str, int]
    completions: Completions


class MessageAnswers:
    """Answers ``/v1/messages`` from the local API's state."""

    def __init__(self, api: LocalState) -> None:
        self.api = api

    async def answer(self, body: Any, *, fault_header: str | None, request_id: str) -> Response:
        turn = self.api.threads.open(body) if isinstance(body, dict) else None
        if turn is not None:
            self.api.stats["thread_continues" if turn.previous_id else "thread_creates"] += 1
        try:
            req = self._admit(turn.body if turn else body, turn, fault_header)
            headers = {"request-id": request_id, **self.api.limits.headers()}
            if req.params.stream:
                return _Streamed(self._events(req), lambda: self.api.threads.release(turn),
                                 headers=headers, ping=3600, sep="\n")
            return await self._whole(req, headers)
        except BaseException:
            self.api.threads.release(turn)
            raise

    def _admit(self, body: Any, turn: ThreadTurn | None, fault_header: str | None) -> _Request:
        """Validate, draw the fault, size the prompt, plan the cache, pass the limits."""
        params = with_tool_call(
            validate_message(body, capabilities=models.capabilities_of(self.api.engine)),
            self.api.engine)
        self.api.stats["requests"] += 1
        fault = self.api.faults.draw(fault_header)
        self._thread_fault(fault, turn, body)
        self.immediate_fault(fault)
        total_tokens = self.api.engine.count_tokens(params.prompt)
        check_request(self.api.engine, params, total_tokens)
        plan = self.api.cache.plan(params.model, params.breakpoints, total_tokens,
                               self.api.engine.count_tokens)
        try:
            self.api.limits.admit(plan.usage.rate_limited_tokens)  # cache reads do not count
        except APIError:
            self.api.stats["rate_limited"] += 1
            raise
        self.api.cache.commit(plan)
        kind = fault.kind if fault else None
        if kind is not None:
            self.api.stats["faults"] += 1
        return _Request(params, plan.usage.input_tokens, plan.usage, kind, turn)

    def _thread_fault(self, fault: Fault | None, turn: ThreadTurn | None, body: Any) -> None:
        """The thread rejections only a fault brings here (they apply to threaded
        requests only; ``thread_not_found`` to a ``continue``)."""
        if fault is None or turn is None or not fault.kind.startswith("thread_"):
            return
        if fault.kind == "thread_not_found" and turn.previous_id is not None:
            self.api.stats["faults"] += 1
            raise thread_error("thread_not_found", "thread.previous_message_id: fault: "
                               f"the thread of {turn.previous_id!r} is gone")
        if fault.kind == "thread_unsupported":
            self.api.stats["faults"] += 1
            raise thread_error("thread_unsupported_request",
                               "fault: this request cannot be threaded",
                               unsupported=[f for f in _THREAD_FEATURES
                                            if body.get(f) is not None])

    def immediate_fault(self, fault: Fault | None) -> None:
        """Raise the faults that answer before any generation (529, 500, 429, 403);
        also ``count_tokens``'s, asked for with ``x-laneway-fault``."""
        if fault is None or fault.kind not in ("529", "500", "429", "403"):
            return
        self.api.stats["faults"] += 1
        if fault.kind == "403":
            raise APIError("permission_error", "Your API key does not have permission to "
                           "use the specified resource.")
        if fault.kind == "529":
            raise APIError("overloaded_error", "Overloaded")
        if fault.kind == "500":
            raise APIError("api_error", "Internal server error")
        raise APIError(
            "rate_limit_error", "This request would exceed your organization's rate limit.",
            headers={"retry-after": str(fault.retry_after_s), **self.api.limits.headers()},
        )

    def _pause(self, req: _Request) -> int | None:
        return PAUSE_AFTER_TOKENS if req.fault == "pause" else None

    async def _whole(self, req: _Request, headers: dict[str, str]) -> Response:
        params = req.params
        if req.fault == "midstream":
            raise APIError("overloaded_error", "Overloaded")
        if req.fault == "stall":
            await asyncio.sleep(self.api.config.stall_s)
            raise APIError("api_error", "the request stalled")
        msg_id = new_id("msg")
        message, outcome = await complete(
            self.api.engine, params, msg_id=msg_id, input_tokens=req.input_tokens,
            seed=self.api.config.seed, cache=req.cache, pause_after_tokens=self._pause(req),
        )
        self.api.limits.record_output(outcome.output_tokens)
        headers.update(self.api.limits.headers())
        if req.turn is not None:  # answered in full, even if the connection is then cut
            self.api.threads.hold(req.turn, msg_id, message["content"])
        if req.fault == "drop":
            self.api.completions.record(params.prompt.last_user_text, dropped=True)
            return self._dropped(message, headers)
        self.api.stats["ok"] += 1
        self.api.completions.record(params.prompt.last_user_text)
        return JSONResponse(message, headers=headers)

    @staticmethod
    def _dropped(message: dict[str, Any], headers: dict[str, str]) -> Response:
        raw = json.dumps(message).encode()

        async def cut() -> AsyncIterator[bytes]:
            yield raw[: len(raw) // 2]
            raise DroppedConnection("fault: dropped connection")

        return StreamingResponse(cut(), media_type="application/json", headers=headers)

    async def _events(self, req: _Request) -> AsyncIterator[ServerSentEvent]:
        try:
            async for event in self._stream(req):
                yield event
        finally:
            self.api.threads.release(req.turn)  # nothing if the stream's end held it

    async def _stream(self, req: _Request) -> AsyncIterator[ServerSentEvent]:
        params, fault = req.params, req.fault
        msg_id = new_id("msg")
        yield _sse({"type": "message_start",
                    "message": message_json(msg_id=msg_id,
                                            model=answering_model(self.api.engine, params),
                                            outcome=None, input_tokens=req.input_tokens,
                                            cache=req.cache)})
        if fault == "stall":
            waited = 0.0
            while waited < self.api.config.stall_s:
                await asyncio.sleep(1.0)
                waited += 1.0
                yield _sse({"type": "ping"})
            raise DroppedConnection("fault: stalled stream ended")
        outcome = Outcome()
        start = structured.block_start(params.output)
        async for event in self._block(req, outcome, start):
            yield event
        if fault == "midstream":
            yield _sse(error_body("overloaded_error", "Overloaded", None))
            return
        if fault == "drop":  # the answer was shorter than two deltas: cut it anyway
            self.api.completions.record(params.prompt.last_user_text, dropped=True)
            raise DroppedConnection("fault: dropped connection")
        # Counted before the last events: a client that has its answer hangs up at once.
        self.api.completions.record(params.prompt.last_user_text)
        if req.turn is not None:
            self.api.threads.hold(req.turn, msg_id, content_of(outcome, tool_id=start.get("id")))
        if params.max_tokens > 0:
            yield _sse({"type": "content_block_stop", "index": 0})
        yield _sse({"type": "message_delta",
                    "delta": {"stop_reason": outcome.stop_reason,
                              "stop_sequence": outcome.stop_sequence},
                    "usage": delta_usage(req.input_tokens, outcome.output_tokens,
                                         cache=req.cache)})
        yield _sse({"type": "message_stop"})
        self.api.stats["ok"] += 1

    async def _block(self, req: _Request, outcome: Outcome,
                     start: dict[str, Any]) -> AsyncIterator[ServerSentEvent]:
        """The content block's start and deltas (none at ``max_tokens: 0``)."""
        params, fault = req.params, req.fault
        if params.max_tokens == 0:
            async for _ in generate(self.api.engine, params, outcome):
                pass
            return
        yield _sse({"type": "content_block_start", "index": 0, "content_block": start})
        yield _sse({"type": "ping"})
        deltas = 0
        try:
            async for text in generate(self.api.engine, params, outcome, seed=self.api.config.seed,
                                       pause_after_tokens=self._pause(req)):
                yield _sse({"type": "content_block_delta", "index": 0,
                            "delta": structured.delta(params.output, text)})
                deltas += 1
                if fault == "midstream" and deltas >= 2:
                    break
                if fault == "drop" and deltas >= 2:
                    raise DroppedConnection("fault: dropped connection")
        finally:
            self.api.limits.record_output(outcome.output_tokens)
        if deltas == 0:  # a block gets at least one delta, even when its text is empty
            yield _sse({"type": "content_block_delta", "index": 0,
                        "delta": structured.delta(params.output, "")})
