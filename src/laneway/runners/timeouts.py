"""How long a non-streamed request may take before it is abandoned and sent again.

A stalled non-streamed request shows no sign of life until its timeout, so a fixed
600 s timeout let 1% of stalled requests hold the pool for minutes at a time (a
3,000-job run at rpm 1,200 used 13% of the limit). The bound follows the run's own
speed instead: ``factor`` × max_tokens ÷ the median output tokens per second of this
run's answers so far, never under ``floor_s`` nor over ``ceiling_s`` (``--timeout``),
doubled each time the same job has timed out (an answer that really needs longer gets
it). A request sent before the run's first answer (its speed unknown) is sent with the
ceiling and cut once the bound is known and passed. A streamed request is bounded by
its silences instead (:mod:`laneway.runners.stream_timeouts`): :meth:`RequestTimeouts.send`
sends either kind within its bound and learns from the answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from laneway.errors import ProviderTimeoutError
from laneway.provider.client import Provider, Reply
from laneway.runners.stream_timeouts import StreamTimeouts

T = TypeVar("T")


@dataclass(kw_only=True)
class RequestTimeouts:
    ceiling_s: float = 600.0
    floor_s: float = 10.0
    factor: float = 4.0
    #: Answers the median is taken over (the most recent).
    window: int = 101
    #: How often a request sent before the speed was known checks its bound.
    poll_s: float = 0.5
    #: The bound of a streamed request's silences.
    streams: StreamTimeouts = field(default_factory=StreamTimeouts)
    _speeds: deque[float] = field(default_factory=deque, repr=False)
    _median_tps: float | None = field(default=None, repr=False)
    _elapsed: deque[float] = field(default_factory=deque, repr=False)
    _median_s: float | None = field(default=None, repr=False)

    def observe(self, *, output_tokens: int, elapsed_s: float) -> None:
        """Note one complete answer's output tokens and the time it took."""
        if elapsed_s <= 0:
            return
        self._elapsed.append(elapsed_s)
        if len(self._elapsed) > self.window:
            self._elapsed.popleft()
        self._median_s = statistics.median(self._elapsed)
        if output_tokens <= 0:
            return
        self._speeds.append(output_tokens / elapsed_s)
        if len(self._speeds) > self.window:
            self._speeds.popleft()
        self._median_tps = statistics.median(self._speeds)

    @property
    def median_tps(self) -> float | None:
        return self._median_tps

    @property
    def stalled_after_s(self) -> float | None:
        """When a request in flight counts as stalled: 10 x the median answer's time, at
        least 1 s (None until answers have come)."""
        return None if self._median_s is None else max(1.0, 10 * self._median_s)

    def timeout_s(self, max_tokens: int, *, timeouts: int = 0) -> float:
        """The timeout for a request of ``max_tokens`` whose job timed out ``timeouts``
        times before."""
        tps = self._median_tps
        if tps is None:
            return self.ceiling_s
        bound = max(self.floor_s, self.factor * max(1, max_tokens) / tps)
        return min(self.ceiling_s, bound * 2.0 ** timeouts)

    async def call(self, send: Callable[[float], Awaitable[T]], *, max_tokens: int,
                   timeouts: int = 0) -> T:
        """``await send(timeout_s)`` within the bound for ``max_tokens``."""
        if self._median_tps is not None:
            return await send(self.timeout_s(max_tokens, timeouts=timeouts))
        started = time.monotonic()
        task = asyncio.ensure_future(send(self.ceiling_s))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.poll_s)
                if done:
                    return task.result()
                if self._median_tps is not None and time.monotonic() - started >= \
                        self.timeout_s(max_tokens, timeouts=timeouts):
                    raise ProviderTimeoutError("the request timed out")
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def send(self, provider: Provider, params: dict[str, Any], *, stream: bool,
                   timeouts: int = 0) -> Reply:
        """Send one request (streamed or not) within its bound, for a job that timed out
        or stalled ``timeouts`` times before, and learn from its answer."""
        if stream:
            reply = await provider.stream(params, timeout_s=self.ceiling_s,
                                          idle_timeout_s=self.streams.ceiling_s,
                                          idle_bound=self.streams.bound(timeouts))
            self.streams.observe(reply.gaps)
        else:
            reply = await self.call(lambda t: provider.create(params, timeout_s=t),
                                    max_tokens=int(params.get("max_tokens", 1)),
                                    timeouts=timeouts)
        self.observe(output_tokens=int(reply.usage.get("output_tokens") or 0),
                     elapsed_s=reply.elapsed_s)
        return reply

    @contextlib.contextmanager
    def stall_watch(self, on_stalled: Callable[[], None]) -> Iterator[None]:
        """Call ``on_stalled`` if the block runs past :attr:`stalled_after_s`."""
        after_s = self.stalled_after_s
        handle = None if after_s is None else \
            asyncio.get_running_loop().call_later(after_s, on_stalled)
        try:
            yield
        finally:
            if handle is not None:
                handle.cancel()
