"""When to try a failed request again, and after how long.

Request errors (4xx) are final. Rate limits (429) are not failures: the job goes back
to the queue and the governor pauses the lane for the ``retry-after`` the server gave,
however long. Other retryable errors (529, 5xx, timeouts, dropped connections, an error
event mid-stream, a stalled stream) back off exponentially with jitter, honouring
``retry-after`` when the server sends one. Errors with no answer use no attempts (see
:mod:`laneway.runners.api_wait`), and a job whose attempts run out on errors that are
not the request's fault is left pending for the next run, not failed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from laneway.errors import ProviderError, RateLimitedError, RetryableError


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    #: Attempts per job, not counting 429s (which are not the job's fault).
    max_attempts: int = 6
    #: 429s one job may meet before it is given up (a spend cap never lifts by itself).
    max_rate_limited: int = 100
    base_s: float = 1.0
    cap_s: float = 60.0

    def should_retry(self, error: ProviderError, *, attempts: int, rate_limited: int) -> bool:
        if isinstance(error, RateLimitedError):
            return rate_limited < self.max_rate_limited
        return isinstance(error, RetryableError) and attempts < self.max_attempts

    def delay_s(self, error: ProviderError, *, attempts: int,
                rng: random.Random | None = None) -> float:
        """Seconds to wait before attempt ``attempts + 1``."""
        if error.retry_after_s is not None:
            return float(error.retry_after_s)
        r = float((rng or random).random())
        backoff = min(self.cap_s, self.base_s * 2.0 ** max(0, attempts - 1))
        return backoff * (0.5 + 0.5 * r)  # "equal jitter": never less than half
