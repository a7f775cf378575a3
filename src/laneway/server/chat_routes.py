"""``POST /v1/chat/stream``: one chat turn, streamed to the client over SSE.

The answer is relayed delta by delta as ``data: {"text": ...}`` and ends with
``data: {"done": true, ...}``. A failure before the first event (within
:data:`PING_S`) is an HTTP error with the status of :mod:`laneway.server.errors` (a rate
limit is a 429 with ``retry-after``), as the API answers; a later one ends the stream
with ``event: error``. When the client
goes away, the request upstream is cancelled, which closes its connection, so the model
stops generating (and nobody pays for text nobody reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from laneway.agent import HybridAgent
from laneway.chat import Conversation, Turn
from laneway.errors import LanewayError
from laneway.server.errors import body_of, response_of
from laneway.server.models import SSE_MARK, ChatRequest, ChatStreamEvent, ErrorBody

log = logging.getLogger("laneway.server")
#: A comment line goes out after this long without an event.
PING_S = 15.0
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
router = APIRouter(tags=["chat"])

_STREAM_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "model": ChatStreamEvent,
        "description": "Server-sent events: `data: {\"text\"}` per delta, then "
                       "`data: {\"done\": true, \"usage\", \"cost_usd\", \"ttft_ms\", ...}`; "
                       "on failure `event: error` with `data: {\"type\": \"error\", "
                       "\"error\": {\"type\", \"message\"}}`.",
    },
    401: {"model": ErrorBody, "description": "The server has a token and none was given."},
    422: {"model": ErrorBody, "description": "The body is not a valid ChatRequest."},
    429: {"model": ErrorBody, "description": "Rate-limited upstream before anything was "
                                             "streamed (`retry-after` when known)."},
    503: {"model": ErrorBody, "description": "The backend is unavailable (overloaded, "
                                             "failing or unreachable)."},
}


def _event(data: dict[str, Any], event: str | None = None) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def done_of(turn: Turn) -> dict[str, Any]:
    usage = {k: int(v) for k, v in turn.usage.items() if isinstance(v, int)}
    return {
        "done": True, "text": turn.text, "usage": usage, "cost_usd": turn.cost_usd,
        "ttft_ms": None if turn.ttft_s is None else round(turn.ttft_s * 1000, 2),
        "tokens_per_s": None if turn.tokens_per_s is None else round(turn.tokens_per_s, 2),
        "elapsed_ms": round(turn.elapsed_s * 1000, 2), "stop_reason": turn.stop_reason,
        "model": turn.answered_model or turn.model, "asked_model": turn.model,
        "asked_cost_usd": turn.asked_cost_usd, "note": turn.note,
    }


class TurnStream:
    """One chat turn running upstream, its SSE events queued as they come.

    Deltas that queue up while the client is being written to go out together in one
    write (each still its own event), which keeps the server's cost per token low
    when many streams share it. Closing :meth:`events` cancels the request upstream.
    """

    def __init__(self, agent: HybridAgent, body: ChatRequest) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        #: The failure of the turn, and whether it came before any event was queued.
        self.error: BaseException | None = None
        self.failed_first = False
        self._queued = 0
        conv = agent.conversation(history=[m.model_dump() for m in body.history],
                                  system=body.system, model=body.model,
                                  max_tokens=body.max_tokens)
        self.task = asyncio.create_task(self._produce(conv, body.message),
                                        name="laneway-chat-turn")

    def _put(self, item: bytes) -> None:
        self._queued += 1
        self.queue.put_nowait(item)

    async def _produce(self, conv: Conversation, message: str) -> None:
        try:
            turn = await conv.send(message, on_text=lambda d: self._put(_event({"text": d})))
            self._put(_event(done_of(turn)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, LanewayError):
                log.exception("chat stream failed")
            self.error, self.failed_first = exc, self._queued == 0
            self._put(_event(body_of(exc), event="error"))
        self.queue.put_nowait(None)

    async def first(self, wait_s: float) -> list[bytes | None]:
        """The first item, if it comes within ``wait_s`` (else nothing yet)."""
        try:
            async with asyncio.timeout(wait_s):
                return [await self.queue.get()]
        except TimeoutError:
            return []

    async def close(self) -> None:
        if not self.task.done():
            self.task.cancel()  # the client went away: stop generation upstream
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def events(self, head: list[bytes | None]) -> AsyncIterator[bytes]:
        """The SSE bytes of the turn, starting with ``head`` (items already taken)."""
        try:
            pending = list(head)
            while True:
                if pending:
                    item = pending.pop(0)
                else:
                    try:
                        async with asyncio.timeout(PING_S):
                            item = await self.queue.get()
                    except TimeoutError:
                        yield b": ping\n\n"  # keeps proxies from closing a quiet stream
                        continue
                chunk = [item] if item is not None else []
                while item is not None and not self.queue.empty():
                    item = self.queue.get_nowait()
                    if item is not None:
                        chunk.append(item)
                if chunk:
                    yield b"".join(chunk)
                if item is None:
                    return
        finally:
            await self.close()


@router.post("/v1/chat/stream", response_class=StreamingResponse, responses=_STREAM_DOC,
             openapi_extra={SSE_MARK: True}, summary="Stream one chat turn (SSE)")
async def chat_stream(body: ChatRequest, request: Request) -> Response:
    """Send `message` (after `history`) and stream the answer as it is generated.

    Uses the interactive lane of the server's governor, so it is served before any
    background run's waiting requests. Disconnecting cancels generation upstream.
    """
    agent: HybridAgent = request.app.state.agent
    turn = TurnStream(agent, body)
    try:
        head = await turn.first(PING_S)
    except BaseException:
        await turn.close()
        raise
    if turn.failed_first and turn.error is not None:
        await turn.close()  # nothing streamed yet: an HTTP error, as the API answers
        return response_of(turn.error)
    return StreamingResponse(turn.events(head), media_type="text/event-stream",
                             headers=SSE_HEADERS)
