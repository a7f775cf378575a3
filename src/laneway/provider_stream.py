"""Reading a streamed Message: its SSE events, with an idle timeout, folded into one
Message as JSON (used by :meth:`laneway.provider.Provider.stream`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from laneway.errors import StalledError, StreamError


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
        usage = message.setdefault("usage", {})
        usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})
    return None


async def read_events(
    events: AsyncIterator[Any], idle_timeout_s: float,
) -> AsyncIterator[tuple[str, Any]]:
    """``(event name, JSON data)`` of each SSE event; pings are dropped and do not count
    as content for the idle timeout."""
    iterator = events.__aiter__()
    last_content = time.monotonic()
    while True:
        remaining = idle_timeout_s - (time.monotonic() - last_content)
        if remaining <= 0:
            raise StalledError(f"no content for {idle_timeout_s:g} s (stream stalled)")
        try:
            async with asyncio.timeout(remaining):
                sse = await iterator.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StalledError(f"no content for {idle_timeout_s:g} s (stream stalled)") from None
        name = sse.event
        if name is None or name == "ping":
            continue
        last_content = time.monotonic()
        if name == "error":
            try:
                data = sse.json()
            except ValueError:
                data = {"error": {"type": "api_error", "message": sse.data}}
            yield name, data
        elif sse.data:
            try:
                data = sse.json()
            except ValueError:
                raise StreamError(f"a {name} event that is not JSON: {sse.data[:200]!r}",
                                  status=200, error_type="api_error") from None
            yield name, data
