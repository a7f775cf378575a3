"""The parts the governor is built from: lanes, limits, token buckets and AIMD.

Kept apart from :mod:`laneway.governor.core` (which re-exports them) so each module stays
one concept: these are plain state machines with no asyncio and no knowledge of models.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class Lane(StrEnum):
    INTERACTIVE = "interactive"
    BACKGROUND = "background"


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Per-minute limits; ``None`` means not known (learnt from headers, if they come)."""

    rpm: int | None = None
    itpm: int | None = None
    otpm: int | None = None

    def of(self, kind: str) -> int | None:
        return {"requests": self.rpm, "input": self.itpm, "output": self.otpm}[kind]


#: The headers that carry each limit, for each bucket.
_HEADER_OF = {"requests": "requests", "input": "input-tokens", "output": "output-tokens"}


def said_limits(headers: Mapping[str, str]) -> dict[str, tuple[int, float]]:
    """Per bucket kind, the limit and what is left of it, as ``anthropic-ratelimit-*``
    headers say (a kind they do not say, or say unreadably, is left out)."""
    out: dict[str, tuple[int, float]] = {}
    for kind, name in _HEADER_OF.items():
        raw_limit = headers.get(f"anthropic-ratelimit-{name}-limit")
        if raw_limit is None:
            continue
        try:
            limit = int(float(raw_limit))
            remaining = float(headers.get(f"anthropic-ratelimit-{name}-remaining", limit))
        except ValueError:
            continue
        if limit > 0:
            out[kind] = (limit, remaining)
    return out


class TokenBucket:
    """A bucket of ``limit_per_min`` that refills continuously at ``limit/60`` per second.

    ``share`` is this process's part of the limit when several processes share one
    account (see :mod:`laneway.governor.share`): the bucket then holds and refills
    ``share`` of it, while ``limit_per_min`` stays the account's.
    """

    def __init__(self, limit_per_min: int, *, now: float, level: float | None = None,
                 margin: float = 1.0, share: float = 1.0) -> None:
        self.limit_per_min = limit_per_min
        self.margin = margin
        self.share = share
        self.level = self.capacity if level is None else min(float(level), self.capacity)
        self.updated = now

    @property
    def capacity(self) -> float:
        return float(self.limit_per_min) * self.share

    @property
    def rate_per_s(self) -> float:
        return self.limit_per_min * self.share * self.margin / 60.0

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate_per_s)
        self.updated = max(self.updated, now)

    def need(self, amount: float, floor: float) -> float:
        """The level that admits ``amount`` keeping ``floor``; a full bucket for oversize."""
        return min(amount + floor, self.capacity)

    def wait_s(self, amount: float, floor: float, now: float) -> float:
        self.refill(now)
        short = self.need(amount, floor) - self.level
        return max(0.0, short / self.rate_per_s) if short > 0 else 0.0

    def take(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level -= amount

    def give(self, amount: float, now: float) -> None:
        self.refill(now)
        self.level = min(self.capacity, self.level + amount)

    def report(self, sent: float, minutes: float, now: float) -> dict[str, float]:
        """For a snapshot: ``sent`` over ``minutes``, against what the limit allowed (a
        full bucket at the start and its refill)."""
        self.refill(now)
        return {"limit": self.limit_per_min, "share": round(self.share, 4),
                "level": round(self.level, 1),
                "achieved_per_min": round(sent / minutes, 1),
                "utilization": round(sent / (self.limit_per_min * (1.0 + minutes)), 4)}

    def set_limit(self, limit_per_min: int, now: float) -> None:
        self.refill(now)
        self.limit_per_min = limit_per_min
        self.level = min(self.level, self.capacity)

    def set_share(self, share: float, now: float) -> None:
        """Hold and refill ``share`` of the limit from now on. A larger share only
        refills faster (the level never jumps), so processes whose shares change a
        moment apart never hold more than the limit between them."""
        self.refill(now)
        self.share = share
        self.level = min(self.level, self.capacity)


class AIMD:
    """Adaptive concurrency: slow start, additive increase, multiplicative decrease."""

    def __init__(self, *, initial: int = 8, minimum: int = 1, maximum: int = 512,
                 decrease: float = 0.7, cooldown_s: float = 5.0) -> None:
        self.limit = float(initial)
        self.minimum = minimum
        self.maximum = maximum
        self.decrease = decrease
        self.cooldown_s = cooldown_s
        self.slow_start = True
        self._clean = 0
        self._last_decrease = -math.inf

    @property
    def value(self) -> int:
        return max(self.minimum, int(self.limit))

    def on_success(self, *, saturated: bool) -> bool:
        """A clean response. Grows (once per round) only if the limit held work back."""
        if not saturated:
            return False
        self._clean += 1
        if self._clean < self.value:
            return False
        self._clean = 0
        before = self.value
        grown = self.limit * 2 if self.slow_start else self.limit + 1
        self.limit = min(float(self.maximum), grown)
        return self.value != before

    def on_overload(self, now: float) -> bool:
        """A 429 or 529: shrink, at most once per cooldown. Returns True if it shrank."""
        self.slow_start = False
        self._clean = 0
        if now - self._last_decrease < self.cooldown_s:
            return False
        self._last_decrease = now
        self.limit = max(float(self.minimum), self.limit * self.decrease)
        return True
