"""What a run's runners have done so far: the one counter that, over the ledger's counts
when they started, makes a run's progress and its summary. The native runner's
:class:`~laneway.runners.native.NativeTally` is a :class:`Tally` with batch counts; a
hybrid run's realtime part is added to it with :meth:`Tally.add`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from laneway.store import Finished
from laneway.store.statuses import JobStatus


@dataclass
class Tally:
    """What the runner has done so far (all counts are committed results)."""

    succeeded: int = 0
    errored: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)
    stop_reason: str | None = None
    #: The one line that says why the run stopped, when it was not asked to.
    stop_detail: str | None = None
    #: Jobs left pending by this run: attempts used up on errors not theirs.
    parked: int = 0
    #: Achieved share of each known rate limit, ``"model:bucket" -> share``.
    utilization: dict[str, float] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.succeeded + self.errored

    def count(self, item: Finished) -> None:
        """Count one committed result (a canceled or expired one counts only its tokens
        and cost: it is neither succeeded nor errored)."""
        if item.status == JobStatus.SUCCEEDED:
            self.succeeded += 1
        elif item.status == JobStatus.ERRORED:
            self.errored += 1
        self.input_tokens += item.input_tokens
        self.output_tokens += item.output_tokens
        if item.cost_usd is None:
            self.unpriced += item.status == JobStatus.SUCCEEDED
        else:
            self.cost_usd += item.cost_usd

    def add(self, later: Tally) -> None:
        """Fold in what a later part of the same run counted (a hybrid run's realtime
        part, after its batches): the counts add up; how the run stopped, the share of
        the limits it used, and what is in flight are the later part's."""
        self.succeeded += later.succeeded
        self.errored += later.errored
        self.input_tokens += later.input_tokens
        self.output_tokens += later.output_tokens
        self.cost_usd += later.cost_usd
        self.unpriced += later.unpriced
        self.requests += later.requests
        self.retries += later.retries
        self.rate_limited += later.rate_limited
        self.parked += later.parked
        self.in_flight = later.in_flight
        self.stop_reason, self.stop_detail = later.stop_reason, later.stop_detail
        self.utilization = later.utilization
