"""The interactive reserve, sized to the people using it.

Background work leaves room in each bucket so a person's request finds it at once; how
much follows what interactive traffic has shown, not a fixed part of the limit:

- per person (the most interactive requests in flight or waiting at once, over the
  recent window) one request, and the p95 of recent interactive requests' input and
  output tokens (what each was reserved);
- all of it while the last interactive request is younger than ``hold_s``, then fading
  linearly over ``fade_s`` to a standing room of 1% of the requests bucket (at least one
  request, at most four; no tokens), kept even before the first person: a floor on a
  bucket's level costs the background that much once, not a share of the rate, and
  spares a person's first requests a wait of a refill of the requests bucket (60 / rpm
  seconds each: 1.2 s at rpm 50). Their tokens wait for their own refill (a short
  prompt at the input limit's rate: milliseconds).

So a gateway nobody chats through gives the background at least 99% of each bucket
(all but one request below rpm 100), and a person's requests find their room at once.
Sizes are worked out when a request is noted, not on every admission check.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

KINDS = ("requests", "input", "output")


@dataclass(frozen=True, slots=True)
class Seen:
    """One interactive request, when it was admitted."""

    at: float
    input: float
    output: float
    #: Interactive requests in flight or waiting then, itself included.
    people: int


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else 0.0


class InteractiveDemand:
    """What one model's interactive lane has asked for lately, and the reserve it needs."""

    def __init__(self, *, hold_s: float = 60.0, fade_s: float = 60.0, standing: bool = True,
                 window: int = 256) -> None:
        self.hold_s = hold_s
        self.standing = standing
        self.fade_s = fade_s
        self.seen: deque[Seen] = deque(maxlen=window)
        self.last_at: float | None = None
        #: Per bucket kind: the room one person needs, times the people seen.
        self.full: dict[str, float] = dict.fromkeys(KINDS, 0.0)

    def note(self, now: float, *, input_tokens: float, output_tokens: float,
             people: int) -> None:
        """An interactive request was admitted; ``people`` as :attr:`Seen.people`."""
        self.seen.append(Seen(now, input_tokens, output_tokens, max(1, people)))
        self.last_at = now
        horizon = now - self.hold_s - self.fade_s
        while self.seen and self.seen[0].at < horizon:
            self.seen.popleft()
        recent = list(self.seen)
        people_seen = max(s.people for s in recent)
        self.full = {"requests": float(people_seen),
                     "input": people_seen * p95([s.input for s in recent]),
                     "output": people_seen * p95([s.output for s in recent])}

    def weight(self, now: float) -> float:
        """1 while interactive traffic is recent, fading to 0 after ``hold_s``."""
        if self.last_at is None:
            return 0.0
        quiet = now - self.last_at
        if quiet <= self.hold_s:
            return 1.0
        if self.fade_s <= 0 or quiet >= self.hold_s + self.fade_s:
            return 0.0
        return 1.0 - (quiet - self.hold_s) / self.fade_s

    def reserve(self, kind: str, now: float, capacity: float) -> float:
        """The room background work must leave in the ``kind`` bucket (of ``capacity``)."""
        w = self.weight(now)
        room = self.full[kind] * w if w else 0.0
        if kind == "requests" and self.standing:
            return max(room, min(4.0, max(1.0, capacity * 0.01)))
        return room

    def as_json(self, now: float, capacities: dict[str, float]) -> dict[str, float]:
        return {kind: round(self.reserve(kind, now, capacities.get(kind, 0.0)), 1)
                for kind in KINDS}
