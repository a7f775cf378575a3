"""Reading a relayed stream on the way through, without changing a byte of it.

The gateway forwards the upstream's bytes as they arrive (event order and framing are
the upstream's own); :class:`SseTap` reads a copy to learn what the ledger needs: the
usage (``message_start`` and ``message_delta``), when the first ``content_block_delta``
(the first text, or the first piece of a tool call's input) arrived, the
``stop_reason``, and an ``error`` event. Only those events are decoded as JSON; the
deltas that carry the text are recognised by their name alone.
"""

from __future__ import annotations

import json
import time
from typing import Any

from laneway.wire.errors import error_body

_DECODED = frozenset({"message_start", "message_delta", "error"})


def fold_usage(usage: dict[str, Any], event: str, data: dict[str, Any]) -> None:
    """Fold a streamed event's usage into ``usage``, the one way (the provider's stream
    reader and the gateway's tap alike): ``message_start``'s usage as it is, then each
    ``message_delta``'s counts that are not null (they are cumulative: the last wins)."""
    if event == "message_start":
        usage.update((data.get("message") or {}).get("usage") or {})
    elif event == "message_delta":
        usage.update({k: v for k, v in (data.get("usage") or {}).items() if v is not None})


def encode_event(name: str, data: dict[str, Any]) -> bytes:
    """One SSE event as the API frames it: ``event:``, compact JSON ``data:``, a blank line."""
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def error_event(error_type: str, message: str) -> bytes:
    """The ``error`` event that ends a stream after its 200 status (the API's own shape:
    the error body without a ``request_id``, which the response's header carries)."""
    return encode_event("error", error_body(error_type, message, None))


class SseTap:
    def __init__(self) -> None:
        self._buffer = b""
        self.usage: dict[str, Any] = {}
        #: When the first ``content_block_delta`` was read (``time.monotonic()``): not
        #: ``content_block_start``, which an upstream sends before the model has written.
        self.first_delta_at: float | None = None
        self.stop_reason: str | None = None
        self.stopped = False
        self.error: dict[str, Any] | None = None
        #: The model that answered (``message_start``'s message names it).
        self.model: str | None = None

    def feed(self, chunk: bytes) -> None:
        """Read the complete events in ``chunk`` (plus what earlier chunks left). Events
        that need no decoding (the deltas, most of a stream) are only looked for: when
        none of the decoded ones can be among them, they are not split at all."""
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n")
        if end < 0:
            self._buffer = data
            return
        complete, self._buffer = data[:end], data[end + 2:]
        if b"message_" not in complete and b"error" not in complete:
            if self.first_delta_at is None and b"content_block_delta" in complete:
                self.first_delta_at = time.monotonic()
            return
        for raw in complete.split(b"\n\n"):
            if raw:
                self._event(raw)

    def _event(self, raw: bytes) -> None:
        name = ""
        payload: list[bytes] = []
        for line in raw.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
            elif line.startswith(b"data:"):
                payload.append(line[5:].lstrip(b" "))
        if name == "content_block_delta" and self.first_delta_at is None:
            self.first_delta_at = time.monotonic()
        elif name == "message_stop":
            self.stopped = True
        if name not in _DECODED:
            return
        try:
            data = json.loads(b"\n".join(payload))
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        if name == "error":
            self.error = data.get("error") if isinstance(data.get("error"), dict) else data
        fold_usage(self.usage, name, data)
        if name == "message_start":
            message = data.get("message") or {}
            if isinstance(message.get("model"), str):
                self.model = message["model"]
        elif name == "message_delta":
            delta = data.get("delta") or {}
            self.stop_reason = delta.get("stop_reason") or self.stop_reason
