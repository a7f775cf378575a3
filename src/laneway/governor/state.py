"""What the governor keeps: the permit it hands out, and its state for each model.

Plain records, kept apart from :mod:`laneway.governor.core` (which re-exports
:class:`Permit`) so that module holds only the rules that change them.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from laneway.governor.buckets import AIMD, Lane, TokenBucket
from laneway.governor.demand import InteractiveDemand


@dataclass(eq=False)
class Permit:
    """Permission to send one request; give it back with :meth:`Governor.release`."""

    lane: Lane
    model: str
    #: Input tokens reserved: the caller's estimate, corrected by what usage has shown.
    input_tokens: float
    output_tokens: float
    max_tokens: int
    #: The caller's own estimate, kept to learn how far off such estimates are.
    estimated_input: float = 0.0
    admitted_at: float = 0.0
    released: bool = False
    #: No longer counted against the concurrency limit (see :meth:`Governor.set_aside`).
    set_aside: bool = False


@dataclass(eq=False)
class Waiter:
    """A request waiting for its permit in a lane."""

    permit: Permit
    future: asyncio.Future[Permit]


@dataclass
class ModelState:
    """One model's buckets, concurrency, pause, lanes and what it has learnt."""

    model: str
    buckets: dict[str, TokenBucket] = field(default_factory=dict)
    aimd: AIMD = field(default_factory=AIMD)
    paused_until: float = 0.0
    #: What people have asked for lately: the room background work leaves them.
    demand: InteractiveDemand = field(default_factory=InteractiveDemand)
    in_flight: dict[Lane, int] = field(default_factory=lambda: {lane: 0 for lane in Lane})
    waiting: dict[Lane, deque[Waiter]] = field(
        default_factory=lambda: {lane: deque() for lane in Lane})
    #: Moving averages: actual input tokens / estimate, and output tokens per request.
    input_ratio: float = 1.0
    output_avg: float | None = None
    sent: dict[str, float] = field(
        default_factory=lambda: {"requests": 0.0, "input": 0.0, "output": 0.0, "429": 0.0})
    #: What admissions took from each bucket, in all (a process's recent use of its share).
    admitted: dict[str, float] = field(
        default_factory=lambda: {"requests": 0.0, "input": 0.0, "output": 0.0})
    #: This process's part of each limit, when processes share one account.
    shares: dict[str, float] = field(default_factory=dict)
    #: The upstream has answered a request of this model (ends the cold start).
    answered: bool = False

    def unmetered(self, kind: str, *, besides: int = 0) -> float:
        """What the requests in flight take of ``kind``, on average, ``besides`` of them
        left out (the one whose answer is read): a bucket learnt from one answer's headers
        starts that much lower, since the others in flight, sent before any bucket
        existed, may not be counted in that answer's ``remaining``."""
        n = sum(self.in_flight.values()) - besides
        if kind == "requests" or not n:
            return float(n)
        return n * self.admitted[kind] / max(1.0, self.admitted["requests"])
