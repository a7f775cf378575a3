"""Message threads (beta ``message-threads-2026-08-12``): the server holds a conversation.

``thread: {"type": "create"}`` answers as usual and holds the conversation (its
``system`` and ``tools`` as created, the messages, the reply) under the reply's ``id``;
``{"type": "continue", "previous_message_id": id}`` sends only the new messages (an empty
list resumes a ``pause_turn`` reply) and no ``system`` or ``tools``: the request is
answered as if it had sent the whole conversation, so usage and rate limits count all of
it. Each reply can be continued once. What the SDK's thread helpers recover from comes
back in the API's error body with ``error.details.error_code``:

- ``thread_not_found`` (404): never held here, evicted, or the server restarted;
- ``thread_already_continued`` (400): that reply was continued already (a retried
  ``continue`` whose first attempt was answered gets this: continues are not idempotent);
- ``thread_continue_in_flight`` (400): another request is continuing it right now;
- ``thread_unsupported_request`` (400, ``details.unsupported``): only as a fault here.

The SDK answers the first three by replaying the whole conversation as a ``create``.

Threads live in this process only: a restart forgets them all. The store is bounded in
count and in bytes (the JSON size of what it holds), least recently used first out; an
evicted thread is ``thread_not_found``, which the SDK recovers from. A turn that fails
(an error, a fault, a stream cut short) leaves its previous reply continuable.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from laneway.wire.errors import APIError, invalid

#: Kept of a reply once continued: a retry then learns it was, not that it is unknown.
_TOMBSTONE_BYTES = 64


def thread_error(code: str, message: str, **details: Any) -> APIError:
    """A rejection the SDK's thread helpers understand (``error.details.error_code``)."""
    error_type = "not_found_error" if code == "thread_not_found" else "invalid_request_error"
    return APIError(error_type, message, details={"error_code": code, **details})


@dataclass(slots=True)
class _Held:
    system: Any
    tools: Any
    #: The conversation through the reply; ``None`` once the reply has been continued.
    messages: list[Any] | None
    size_bytes: int
    in_flight: bool = False


@dataclass(slots=True)
class ThreadTurn:
    """One threaded request: the whole body to answer, and what to hold once answered."""

    body: dict[str, Any]
    #: The reply it continues (``None``: it creates the thread).
    previous_id: str | None
    done: bool = field(default=False)


def _uncached(value: Any) -> Any:
    """``value`` without its blocks' ``cache_control``: a marker belongs to the turn that
    sent it (a request takes at most four), not to every later turn."""
    if isinstance(value, dict):
        return {k: _uncached(v) if k == "content" else v for k, v in value.items()
                if k != "cache_control"}
    if isinstance(value, list):
        return [_uncached(v) for v in value]
    return value


def _thread_field(body: dict[str, Any]) -> tuple[str, str | None] | None:
    """The request's ``thread``: (type, previous_message_id), or ``None`` for none."""
    thread = body.get("thread")
    if thread is None:
        return None
    if not isinstance(thread, dict) or thread.get("type") not in ("create", "continue"):
        raise invalid("thread.type", "Input should be 'create' or 'continue'")
    extra = sorted(set(thread) - {"type", "previous_message_id"})
    if extra or (thread["type"] == "create" and "previous_message_id" in thread):
        raise invalid(f"thread.{(extra or ['previous_message_id'])[0]}",
                      "Extra inputs are not permitted")
    if thread["type"] == "create":
        return "create", None
    previous = thread.get("previous_message_id")
    if not isinstance(previous, str) or not previous:
        raise invalid("thread.previous_message_id", "Field required")
    for name in ("system", "tools"):
        if body.get(name) is not None:
            raise invalid(name, f"cannot be sent with thread continue: the thread keeps "
                          f"the {name} it was created with")
    if not isinstance(body.get("messages"), list):
        raise invalid("messages", "Input should be a valid list")
    return "continue", previous


class ThreadStore:
    """The threads this process holds, bounded by ``max_count`` and ``max_bytes``."""

    def __init__(self, *, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._held: OrderedDict[str, _Held] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def open(self, body: dict[str, Any]) -> ThreadTurn | None:
        """The turn of a request with ``thread`` (``None`` without one); a ``continue``
        gets the held conversation in its body and is in flight until answered."""
        kind = _thread_field(body)
        if kind is None:
            return None
        plain = {k: v for k, v in body.items() if k != "thread"}
        previous = kind[1]
        if previous is None:
            return ThreadTurn(plain, None)
        held = self._held.get(previous)
        if held is None:
            raise thread_error("thread_not_found", f"thread.previous_message_id: no thread "
                               f"holds {previous!r} (never created here, evicted, or the "
                               "server restarted since)")
        if held.messages is None:
            raise thread_error("thread_already_continued", f"thread.previous_message_id: "
                               f"{previous!r} has been continued already; continue from "
                               "the thread's latest reply")
        if held.in_flight:
            raise thread_error("thread_continue_in_flight", "thread.previous_message_id: "
                               f"another request is continuing {previous!r} right now")
        held.in_flight = True
        self._held.move_to_end(previous)
        created = {k: v for k, v in (("system", held.system), ("tools", held.tools))
                   if v is not None}
        plain.update(created, messages=[*held.messages, *plain["messages"]])
        return ThreadTurn(plain, previous)

    def hold(self, turn: ThreadTurn, reply_id: str, content: list[Any]) -> None:
        """The turn was answered in full: hold the conversation under ``reply_id``, and
        its previous reply as continued."""
        if turn.done:
            return
        turn.done = True
        previous = self._held.get(turn.previous_id) if turn.previous_id else None
        if previous is not None:
            self.bytes += _TOMBSTONE_BYTES - previous.size_bytes
            previous.messages, previous.size_bytes = None, _TOMBSTONE_BYTES
            previous.in_flight = False
        body = turn.body
        messages = [*_uncached(body["messages"]), {"role": "assistant", "content": content}]
        size = len(json.dumps([body.get("system"), body.get("tools"), messages],
                              separators=(",", ":"), default=str))
        self._held[reply_id] = _Held(body.get("system"), body.get("tools"), messages, size)
        self.bytes += size
        self._evict()

    def release(self, turn: ThreadTurn | None) -> None:
        """The turn failed (or was cut short): its previous reply stays continuable."""
        if turn is None or turn.done:
            return
        turn.done = True
        previous = self._held.get(turn.previous_id) if turn.previous_id else None
        if previous is not None:
            previous.in_flight = False

    def _evict(self) -> None:
        while self._held and (len(self._held) > self.max_count or self.bytes > self.max_bytes):
            _, gone = self._held.popitem(last=False)
            self.bytes -= gone.size_bytes
