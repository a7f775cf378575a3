"""How long a streamed request may stay silent before it is abandoned and sent again.

A stalled stream sends pings but no content; the fixed 60 s idle timeout let each
stall hold its job for a minute, so a 3,000-job streamed run at rpm 1,200 under the
fault mix of issue 17 (1% stalls) used 68% of the limit, most of the loss in its tail.
The bound follows the run's own speed instead, as :mod:`laneway.runners.timeouts` does
for non-streamed requests: ``factor`` × the p99 of this run's recent streams' wait for
the first content event (for the first) or of their longest silence between content
events (for the rest), never under ``floor_s`` nor over ``ceiling_s`` (the idle
timeout), doubled each time the same job has stalled or timed out (a job that really
is slower gets longer). Until a stream has completed the bound is not known: the
ceiling applies, and the bound is applied as soon as it is.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from laneway.provider.stream import Gaps, IdleBound


@dataclass(kw_only=True)
class StreamTimeouts:
    ceiling_s: float = 60.0
    floor_s: float = 10.0
    factor: float = 4.0
    #: Streams the p99 is taken over (the most recent).
    window: int = 200
    _first: deque[float] = field(default_factory=deque, repr=False)
    _between: deque[float] = field(default_factory=deque, repr=False)
    _first_p99: float | None = field(default=None, repr=False)
    _between_p99: float | None = field(default=None, repr=False)

    def observe(self, gaps: Gaps | None) -> None:
        """Note the silences of one stream that completed."""
        if gaps is None or gaps.first_s is None:
            return
        self._first_p99 = self._add(self._first, gaps.first_s)
        self._between_p99 = self._add(self._between, gaps.longest_s)

    def _add(self, samples: deque[float], value: float) -> float:
        samples.append(value)
        if len(samples) > self.window:
            samples.popleft()
        ordered = sorted(samples)
        return ordered[int(0.99 * (len(ordered) - 1))]

    def idle_s(self, *, first: bool, stalls: int = 0) -> float | None:
        """The silence allowed before the next content event (None: not known yet) for a
        job that stalled or timed out ``stalls`` times before."""
        p99 = self._first_p99 if first else self._between_p99
        if p99 is None:
            return None
        return min(self.ceiling_s, max(self.floor_s, self.factor * p99) * 2.0 ** stalls)

    def bound(self, stalls: int = 0) -> IdleBound:
        """:meth:`idle_s` for one request, for :meth:`laneway.provider.client.Provider.stream`."""
        return lambda first: self.idle_s(first=first, stalls=stalls)
