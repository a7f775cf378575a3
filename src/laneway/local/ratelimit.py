"""Rate limits of the local API: continuously refilled token buckets, and their headers.

Each limit (requests, input tokens, output tokens per minute) is a bucket that holds a
minute's worth and refills at ``limit / 60`` per second, as the API's are described.
A request is admitted when the requests bucket holds one request, the input bucket holds
its input tokens (or is full, so a request larger than the whole bucket still passes
once it is full), and the output bucket is not in debt. Output tokens are taken when
they are generated, which can put the output bucket into debt until it refills.

Headers: ``remaining`` is exact (whole units, never rounded to thousands); ``reset`` is
when the bucket is full again; ``anthropic-ratelimit-tokens-*`` all describe the token
bucket with the fewest tokens left. A 429's ``retry-after`` is the time until the
blocking bucket holds what the request needs, rounded up to whole seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from laneway.wire.errors import APIError
from laneway.wire.ids import rfc3339


@dataclass(slots=True)
class Bucket:
    limit_per_min: int
    level: float = field(default=-1.0)
    updated_s: float = 0.0

    def __post_init__(self) -> None:
        if self.level < 0:
            self.level = float(self.limit_per_min)

    @property
    def rate_per_s(self) -> float:
        return self.limit_per_min / 60.0

    def refill(self, now_s: float) -> None:
        elapsed = max(0.0, now_s - self.updated_s)
        self.level = min(float(self.limit_per_min), self.level + elapsed * self.rate_per_s)
        self.updated_s = now_s

    def seconds_until(self, amount: float) -> float:
        """Seconds until the bucket holds ``amount`` (capped at a full bucket)."""
        need = min(amount, float(self.limit_per_min)) - self.level
        return max(0.0, need / self.rate_per_s)

    @property
    def remaining(self) -> int:
        """Whole units the bucket holds now (0 when in debt)."""
        return max(0, math.floor(self.level))

    def seconds_until_full(self) -> float:
        return max(0.0, (self.limit_per_min - self.level) / self.rate_per_s)


class RateLimiter:
    """The buckets of one server (the local API keeps one set for every model)."""

    def __init__(
        self, *, rpm: int | None = None, itpm: int | None = None, otpm: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        now = clock()
        self.requests = Bucket(rpm, updated_s=now) if rpm else None
        self.input = Bucket(itpm, updated_s=now) if itpm else None
        self.output = Bucket(otpm, updated_s=now) if otpm else None

    @property
    def enabled(self) -> bool:
        return any(b is not None for b in (self.requests, self.input, self.output))

    def _refill(self) -> float:
        now = self.clock()
        for b in (self.requests, self.input, self.output):
            if b is not None:
                b.refill(now)
        return now

    def admit(self, input_tokens: int) -> None:
        """Take one request and its input tokens, or raise a 429 with ``retry-after``."""
        if not self.enabled:
            return
        self._refill()
        waits: list[tuple[float, str]] = []
        if self.requests is not None and self.requests.level < 1.0:
            waits.append((self.requests.seconds_until(1.0),
                          f"{self.requests.limit_per_min} requests per minute"))
        if self.input is not None:
            need = min(float(input_tokens), float(self.input.limit_per_min))
            if self.input.level < need:
                waits.append((self.input.seconds_until(need),
                              f"{self.input.limit_per_min} input tokens per minute"))
        if self.output is not None and self.output.level <= 0.0:
            waits.append((self.output.seconds_until(1.0),
                          f"{self.output.limit_per_min} output tokens per minute"))
        if waits:
            wait_s, what = max(waits)
            raise APIError(
                "rate_limit_error",
                f"This request would exceed your organization's rate limit of {what}. "
                "Please reduce the prompt length or the maximum tokens requested, or try "
                "again later.",
                headers={"retry-after": str(max(1, math.ceil(wait_s))), **self.headers()},
            )
        if self.requests is not None:
            self.requests.level -= 1.0
        if self.input is not None:
            self.input.level -= float(input_tokens)

    def record_output(self, output_tokens: int) -> None:
        """Take generated tokens from the output bucket (it may go into debt)."""
        if self.output is None:
            return
        self._refill()
        self.output.level = max(-float(self.output.limit_per_min),
                                self.output.level - float(output_tokens))

    def headers(self) -> dict[str, str]:
        """``anthropic-ratelimit-*`` headers describing the buckets now."""
        if not self.enabled:
            return {}
        self._refill()
        wall = self.wall_clock()
        out: dict[str, str] = {}

        def put(name: str, b: Bucket) -> None:
            # Exact, not rounded to thousands: a small limit must not read as empty.
            out[f"anthropic-ratelimit-{name}-limit"] = str(b.limit_per_min)
            out[f"anthropic-ratelimit-{name}-remaining"] = str(b.remaining)
            out[f"anthropic-ratelimit-{name}-reset"] = str(rfc3339(wall + b.seconds_until_full()))

        if self.requests is not None:
            put("requests", self.requests)
        if self.input is not None:
            put("input-tokens", self.input)
        if self.output is not None:
            put("output-tokens", self.output)
        tightest = self.most_restrictive()
        if tightest is not None:
            put("tokens", tightest)
        return out

    def most_restrictive(self) -> Bucket | None:
        """The token bucket ``anthropic-ratelimit-tokens-*`` describe: the one with the
        fewest tokens remaining (the smaller limit on a tie), all three headers from it."""
        buckets = [b for b in (self.input, self.output) if b is not None]
        return min(buckets, key=lambda b: (b.remaining, b.limit_per_min), default=None)
