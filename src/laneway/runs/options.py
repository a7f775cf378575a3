"""A run's settings as the realtime runner's options and governor (mapped once here)."""

from __future__ import annotations

from typing import Protocol

from laneway.governor.buckets import RateLimits
from laneway.governor.core import Governor
from laneway.governor.demand import InteractiveDemand
from laneway.runners.realtime_options import RealtimeOptions
from laneway.runners.retry import RetryPolicy


class Sending(Protocol):
    """How requests are sent: fields of ``RunConfig`` and ``WorkerConfig`` alike."""

    @property
    def concurrency(self) -> int | None: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def timeout_s(self) -> float: ...
    @property
    def wait_for_api_s(self) -> float: ...
    @property
    def stream(self) -> bool: ...


def realtime_options(
    settings: Sending, *, worker_id: str, budget_usd: float | None,
    claim_size: int | None = None, lease_s: float | None = None,
) -> RealtimeOptions:
    """The realtime runner's options for one run (``budget_usd``: the run's own)."""
    options = RealtimeOptions(
        concurrency=settings.concurrency,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        timeout_s=settings.timeout_s, wait_for_api_s=settings.wait_for_api_s,
        stream=settings.stream, budget_usd=budget_usd, worker_id=worker_id)
    if claim_size is not None:
        options.claim_size = claim_size
    if lease_s is not None:
        options.lease_s = lease_s
    return options


def background_governor(limits: RateLimits | None) -> Governor:
    """A governor for a process no person waits on (``laneway run``, a worker): no
    interactive request ever comes, so it keeps no room for one, not even a request."""
    return Governor(limits=limits, demand=lambda: InteractiveDemand(standing=False))
