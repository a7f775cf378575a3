"""Where a run is: the ledger's counts when its runner started plus the runner's tally."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from laneway.store.statuses import JobStatus

if TYPE_CHECKING:
    from laneway.runners.tally import Tally
    from laneway.store import Counts


@dataclass(frozen=True)
class Progress:
    """A moment of a run, for progress bars and event streams."""

    run_id: str
    total: int
    succeeded: int
    errored: int
    in_flight: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    rate_per_s: float
    elapsed_s: float
    phase: str = "running"

    @property
    def done(self) -> int:
        return self.succeeded + self.errored

    @property
    def eta_s(self) -> float | None:
        if self.rate_per_s <= 0:
            return None
        return max(0.0, (self.total - self.done) / self.rate_per_s)


def progress_of(run_id: str, total: int, before: Counts, tally: Tally | None = None, *,
                phase: str = "running") -> Progress:
    """``before`` (the ledger's counts when the runner started) plus ``tally`` (what the
    runner has committed since; a native tally too). Without a tally: the ledger's."""
    if tally is None:
        return Progress(
            run_id=run_id, total=total, succeeded=before[JobStatus.SUCCEEDED],
            errored=before[JobStatus.ERRORED], in_flight=0, input_tokens=before.input_tokens,
            output_tokens=before.output_tokens, cost_usd=before.cost_usd, rate_per_s=0.0,
            elapsed_s=0.0, phase=phase)
    elapsed = time.monotonic() - tally.started_at
    return Progress(
        run_id=run_id, total=total, succeeded=before[JobStatus.SUCCEEDED] + tally.succeeded,
        errored=before[JobStatus.ERRORED] + tally.errored, in_flight=tally.in_flight,
        input_tokens=before.input_tokens + tally.input_tokens,
        output_tokens=before.output_tokens + tally.output_tokens,
        cost_usd=before.cost_usd + tally.cost_usd,
        rate_per_s=tally.done / elapsed if elapsed > 0 else 0.0, elapsed_s=elapsed,
        phase=phase)


def limit_use(governor: dict[str, Any]) -> dict[str, float]:
    """``model:bucket -> share of the bucket in use`` (1 - level / what the process's
    share of the limit holds) for every known limit: 0 when the bucket is full, near 1
    when requests are held back by it."""
    out: dict[str, float] = {}
    for model, st in governor.items():
        if not isinstance(st, dict):
            continue
        for kind, bucket in (st.get("buckets") or {}).items():
            held = float(bucket.get("limit") or 0) * float(bucket.get("share", 1.0))
            if held:
                used = 1.0 - float(bucket.get("level", held)) / held
                out[f"{model}:{kind}"] = min(1.0, max(0.0, used))
    return out
