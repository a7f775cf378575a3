"""The relay's reading of a stream (SseTap) is the same whatever pieces it arrives in:
one piece, byte by byte, the events that arrive together, CRLF line ends."""

from __future__ import annotations

import json
import random

from laneway.wire.sse import SseTap


def _event(name: str, data: dict[str, object]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


STREAM = b"".join([
    _event("message_start", {"type": "message_start", "message": {
        "model": "claude-haiku-4-5", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
    _event("content_block_start", {"type": "content_block_start", "index": 0}),
    _event("ping", {"type": "ping"}),
    *[_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": word}})
      for word in ("no", "error", "here", "message_stop", "is", "text")],
    _event("content_block_stop", {"type": "content_block_stop", "index": 0}),
    _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                             "usage": {"output_tokens": 7}}),
    _event("message_stop", {"type": "message_stop"}),
])


def _read(pieces: list[bytes]) -> tuple[object, ...]:
    tap = SseTap()
    for piece in pieces:
        tap.feed(piece)
    return (tap.usage, tap.model, tap.stop_reason, tap.stopped, tap.error,
            tap.first_delta_at is not None)


def _cut(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(data)), 30))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def test_the_same_reading_in_any_pieces() -> None:
    whole = _read([STREAM])
    assert whole == ({"input_tokens": 12, "output_tokens": 7}, "claude-haiku-4-5", "end_turn",
                     True, None, True)
    assert _read([STREAM[i:i + 1] for i in range(len(STREAM))]) == whole
    events = [e + b"\n\n" for e in STREAM.split(b"\n\n") if e]
    assert _read(events) == whole
    assert _read([STREAM.replace(b"\n", b"\r\n")]) == whole
    rng = random.Random(3)
    for _ in range(20):
        assert _read(_cut(STREAM, rng)) == whole


def test_an_error_event_and_no_delta() -> None:
    tap = SseTap()
    tap.feed(_event("content_block_start", {"type": "content_block_start"}))
    assert tap.first_delta_at is None
    tap.feed(_event("error", {"type": "error", "error": {"type": "overloaded_error"}}))
    assert tap.error == {"type": "overloaded_error"} and not tap.stopped
