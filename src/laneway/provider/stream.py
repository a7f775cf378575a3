"""Reading a streamed Message: its SSE events, with an idle timeout, folded into one
Message as JSON (used by :meth:`laneway.provider.client.Provider.stream`).

The idle timeout is the most a stream may stay silent (pings do not count); a caller
that knows more (a run's observed gaps: :mod:`laneway.runners.stream_timeouts`) passes
a shorter bound, and gets the gaps this stream had, to learn from."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from laneway.errors import StalledError, StreamError
from laneway.wire.errors import error_body
from laneway.wire.sse import fold_usage


def apply_event(message: dict[str, Any], event: str, data: Any) -> str | None:
    """Fold one streamed event into ``message``; returns the text, for a text delta."""
    if event == "content_block_delta":
        block = message["content"][data["index"]]
        delta = data["delta"]
        dtype = delta.get("type")
        if dtype == "text_delta":
            text: str = delta["text"]
            block["text"] = block.get("text", "") + text
            return text
        if dtype == "input_json_delta":
            block["_partial_json"] = block.get("_partial_json", "") + delta["partial_json"]
        elif dtype == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + delta["thinking"]
        elif dtype == "signature_delta":
            block["signature"] = delta["signature"]
    elif event == "message_start":
        message.clear()
        message.update(data["message"])
        message["content"] = []
        message["usage"] = {}
        fold_usage(message["usage"], event, data)
    elif event == "content_block_start":
        message.setdefault("content", []).append(dict(data["content_block"]))
    elif event == "content_block_stop":
        block = message["content"][data["index"]]
        partial = block.pop("_partial_json", None)
        if partial is not None:
            block["input"] = json.loads(partial) if partial else {}
    elif event == "message_delta":
        message["stop_reason"] = data["delta"].get("stop_reason")
        message["stop_sequence"] = data["delta"].get("stop_sequence")
        fold_usage(message.setdefault("usage", {}), event, data)
    return None


#: The silence allowed before the next content event, given whether it is the first:
#: seconds, or ``None`` while not known (the idle timeout applies meanwhile, and the
#: bound is asked again every :data:`POLL_S` while waiting).
IdleBound = Callable[[bool], float | None]
POLL_S = 0.5


@dataclass
class Gaps:
    """What a stream's reader measured: seconds from the response to the first content
    event, and the longest silence between content events after it."""

    first_s: float | None = None
    longest_s: float = 0.0


async def read_events(
    events: AsyncIterator[Any], idle_timeout_s: float, *, bound: IdleBound | None = None,
    gaps: Gaps | None = None,
) -> AsyncIterator[tuple[str, Any]]:
    """``(event name, JSON data)`` of each SSE event; pings are dropped and do not count
    as content for the idle timeout (``idle_timeout_s``, or less by ``bound``)."""
    iterator = events.__aiter__()
    last_content = time.monotonic()
    first = True
    while True:
        try:
            sse = await _next_event(iterator, idle_timeout_s, bound, first, last_content)
        except StopAsyncIteration:
            return
        name = sse.event
        if name is None or name == "ping":
            continue
        now = time.monotonic()
        if gaps is not None:
            if first:
                gaps.first_s = now - last_content
            else:
                gaps.longest_s = max(gaps.longest_s, now - last_content)
        first = False
        last_content = now
        if name == "error":
            try:
                data = sse.json()
            except ValueError:
                data = error_body("api_error", sse.data, None)
            yield name, data
        elif sse.data:
            try:
                data = sse.json()
            except ValueError:
                raise StreamError(f"a {name} event that is not JSON: {sse.data[:200]!r}",
                                  status=200, error_type="api_error") from None
            yield name, data


async def _next_event(iterator: AsyncIterator[Any], idle_timeout_s: float,
                      bound: IdleBound | None, first: bool, since: float) -> Any:
    """The next SSE event, unless the stream is silent for longer than allowed."""
    def limit() -> tuple[float, bool]:
        allowed = None if bound is None else bound(first)
        if allowed is None:
            return idle_timeout_s, bound is None
        return min(idle_timeout_s, allowed), True

    limit_s, known = limit()
    remaining = limit_s - (time.monotonic() - since)
    if remaining <= 0:
        raise _stalled(limit_s)
    if known:
        try:
            async with asyncio.timeout(remaining):
                return await iterator.__anext__()
        except TimeoutError:
            raise _stalled(limit_s) from None
    # The bound is not known yet: wait in steps, and apply it once it is.
    task = asyncio.ensure_future(iterator.__anext__())
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=min(POLL_S, remaining))
            if done:
                return task.result()
            limit_s, _ = limit()
            remaining = limit_s - (time.monotonic() - since)
            if remaining <= 0:
                raise _stalled(limit_s)
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _stalled(limit_s: float) -> StalledError:
    return StalledError(f"no content for {limit_s:.3g} s (stream stalled)")
