"""``POST /v1/chat/stream``: one chat turn, streamed to the client over SSE.

The answer is relayed delta by delta as ``data: {"text": ...}`` and ends with
``data: {"done": true, ...}``; a failure ends it with ``event: error``. When the client
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
from fastapi.responses import StreamingResponse

from laneway.agent import HybridAgent
from laneway.chat import Turn
from laneway.errors import LanewayError, ProviderError
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
                       "on failure `event: error` with `data: {\"error\": {\"type\", "
                       "\"message\"}}`.",
    },
    401: {"model": ErrorBody, "description": "The server has a token and none was given."},
    422: {"model": ErrorBody, "description": "The body is not a valid ChatRequest."},
}


def _event(data: dict[str, Any], event: str | None = None) -> bytes:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def error_of(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProviderError):
        return {"error": exc.as_wire_error()}
    if isinstance(exc, LanewayError):
        return {"error": {"type": "invalid_request_error", "message": str(exc)}}
    return {"error": {"type": "api_error", "message": "internal error in laneway serve"}}


def done_of(turn: Turn) -> dict[str, Any]:
    usage = {k: int(v) for k, v in turn.usage.items() if isinstance(v, int)}
    return {
        "done": True, "text": turn.text, "usage": usage, "cost_usd": turn.cost_usd,
        "ttft_ms": None if turn.ttft_s is None else round(turn.ttft_s * 1000, 2),
        "tokens_per_s": None if turn.tokens_per_s is None else round(turn.tokens_per_s, 2),
        "elapsed_ms": round(turn.elapsed_s * 1000, 2), "stop_reason": turn.stop_reason,
        "model": turn.model,
    }


async def relay(agent: HybridAgent, body: ChatRequest) -> AsyncIterator[bytes]:
    """The SSE bytes of one turn. Closing this generator cancels the request upstream.

    Deltas that queue up while the client is being written to go out together in one
    write (each still its own event), which keeps the server's cost per token low
    when many streams share it.
    """
    conv = agent.conversation(history=[m.model_dump() for m in body.history],
                              system=body.system, model=body.model,
                              max_tokens=body.max_tokens)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def produce() -> None:
        try:
            turn = await conv.send(body.message,
                                   on_text=lambda d: queue.put_nowait(_event({"text": d})))
            queue.put_nowait(_event(done_of(turn)))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, LanewayError):
                log.exception("chat stream failed")
            queue.put_nowait(_event(error_of(exc), event="error"))
        queue.put_nowait(None)

    task = asyncio.create_task(produce(), name="laneway-chat-turn")
    try:
        while True:
            try:
                async with asyncio.timeout(PING_S):
                    item = await queue.get()
            except TimeoutError:
                yield b": ping\n\n"  # keeps proxies from closing a quiet stream
                continue
            chunk = [item] if item is not None else []
            while item is not None and not queue.empty():
                item = queue.get_nowait()
                if item is not None:
                    chunk.append(item)
            if chunk:
                yield b"".join(chunk)
            if item is None:
                return
    finally:
        if not task.done():
            task.cancel()  # the client went away: stop generation upstream
        with contextlib.suppress(asyncio.CancelledError):
            await task


@router.post("/v1/chat/stream", response_class=StreamingResponse, responses=_STREAM_DOC,
             openapi_extra={SSE_MARK: True}, summary="Stream one chat turn (SSE)")
async def chat_stream(body: ChatRequest, request: Request) -> StreamingResponse:
    """Send `message` (after `history`) and stream the answer as it is generated.

    Uses the interactive lane of the server's governor, so it is served before any
    background run's waiting requests. Disconnecting cancels generation upstream.
    """
    agent: HybridAgent = request.app.state.agent
    return StreamingResponse(relay(agent, body), media_type="text/event-stream",
                             headers=SSE_HEADERS)
