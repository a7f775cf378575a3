"""Which lane a request takes, and how long it may wait for the governor.

A request waits in its lane until the governor admits it, or until its lane's wait
limit passes (by default 60 s for interactive, 5 minutes for background: under the
SDKs' 10-minute default timeout, so a client never gives up first); then it is answered
429 with a ``retry-after`` that says how long the quota will stay spent. A client that
goes away while it waits loses its place and nothing is sent for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from starlette.types import Receive

from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.governor.state import Permit
from laneway.server.gateway.revocations import Outrun, before, unless

T = TypeVar("T")

#: The request header that picks a lane.
LANE_HEADER = "laneway-lane"


@dataclass(frozen=True, slots=True)
class WaitLimits:
    """How long a request may wait, in its lane, before it is answered 429."""

    interactive_s: float = 60.0
    background_s: float = 300.0

    def of(self, lane: Lane) -> float:
        return self.interactive_s if lane is Lane.INTERACTIVE else self.background_s


class BadLane(ValueError):
    """A ``laneway-lane`` header that names no lane."""


class ClientGone(Exception):
    """The client closed its connection: its request is dropped."""


class WaitedTooLong(Exception):
    """The wait limit passed before the request could be sent (or sent again)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry after {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


def choose_lane(*, streamed: bool, header: str | None, key_lane: str | None) -> Lane:
    """A key's lane wins (the operator set it), then the header, then the kind of call:
    a stream is a person waiting (interactive), anything else is background."""
    if key_lane:
        return Lane(key_lane)
    if header is not None and header.strip():
        try:
            return Lane(header.strip().lower())
        except ValueError:
            raise BadLane(f"{LANE_HEADER}: {header.strip()!r} is not a lane; "
                          "use 'interactive' or 'background'") from None
    return Lane.INTERACTIVE if streamed else Lane.BACKGROUND


class ClientWatch:
    """Notices, while a request waits or is being answered upstream, that its client
    went away. A streamed answer keeps it running while it is written (see
    :mod:`.streamed`), and stops it when it ends."""

    def __init__(self, receive: Receive) -> None:
        self._task = asyncio.ensure_future(self._watch(receive))

    @staticmethod
    async def _watch(receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    @property
    def gone(self) -> bool:
        return self._task.done() and not self._task.cancelled()

    def stop(self) -> None:
        self._task.cancel()

    def when_gone(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (soon) when the client leaves; never once stopped."""
        self._task.add_done_callback(lambda task: None if task.cancelled() else callback())

    async def race(self, work: Awaitable[T], *, deadline: float | None = None) -> T:
        """``work``'s result; :class:`ClientGone` if the client leaves first, or
        :class:`TimeoutError` at ``deadline`` (``time.monotonic()``); ``work`` is
        cancelled either way."""
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return await before(work, self._task, within_s=timeout)
        except Outrun:
            if self.gone:
                raise ClientGone from None
            raise TimeoutError from None

    async def sleep(self, seconds: float) -> None:
        """Sleep, unless the client leaves first (:class:`ClientGone`)."""
        with contextlib.suppress(TimeoutError):
            await self.race(asyncio.sleep(max(0.0, seconds)),
                            deadline=time.monotonic() + seconds)
        if self.gone:
            raise ClientGone


def retry_after_s(governor: Governor, model: str) -> int:
    """An honest ``retry-after`` for a request that waited its limit: how long the
    lane's pause still runs, or until the emptiest bucket has room for one request."""
    st = governor.state(model)
    now = governor.clock()
    wait = max(0.0, st.paused_until - now)
    for bucket in st.buckets.values():
        wait = max(wait, bucket.wait_s(1.0, 0.0, now))
    return max(1, math.ceil(wait / governor.speed))


async def admit(governor: Governor, watch: ClientWatch, lane: Lane, model: str, *,
                input_tokens: int, max_tokens: int, deadline: float,
                stop: asyncio.Future[None] | None = None) -> Permit:
    """Wait for the governor's permit (see the module docstring for the failures);
    :class:`~.revocations.Revoked` if ``stop`` is set first (its key was revoked)."""
    fast = governor.try_acquire(lane, model, input_tokens=input_tokens, max_tokens=max_tokens)
    if fast is not None:
        return fast
    try:
        return await watch.race(unless(governor.acquire(
            lane, model, input_tokens=input_tokens, max_tokens=max_tokens), stop),
            deadline=deadline)
    except TimeoutError:
        raise WaitedTooLong(retry_after_s(governor, model)) from None
