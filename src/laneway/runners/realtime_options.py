"""The options of the realtime runner (:mod:`laneway.runners.realtime`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from laneway.cost.prices import NO_PRICES, PriceTable
from laneway.runners.retry import RetryPolicy
from laneway.store.leases import lease_s as default_lease_s


@dataclass(kw_only=True)
class RealtimeOptions:
    #: Fixed number of requests in flight; ``None`` lets the governor adapt it.
    concurrency: int | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: The most one request may take (non-streamed ones get less: runners.timeouts).
    timeout_s: float = 600.0
    #: Stop the run after this long with no answer from the API (runners.api_wait).
    wait_for_api_s: float = 30.0
    #: Stream each request (detects stalls and mid-stream errors; needed for huge outputs).
    stream: bool = False
    idle_timeout_s: float = 60.0
    #: Stop sending new work before the run's spend would pass this (USD).
    budget_usd: float | None = None
    #: Jobs claimed from the ledger at a time.
    claim_size: int = 256
    #: A claim's lease (``$LANEWAY_LEASE_S``, default 300 s), renewed every third of it.
    lease_s: float = field(default_factory=default_lease_s)
    worker_id: str = "main"
    #: Only jobs with seq below this are sent (the planner's realtime share), if set.
    max_seq: int | None = None
    #: Prices the run was given for models not in the table (``--price``).
    prices: PriceTable = NO_PRICES
