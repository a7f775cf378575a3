"""A run's progress as the dashboard sees it: counts from the ledger, rates over a window.

The ledger's counts are the truth (they include work done by any process). The
governor's snapshot comes from this server's governor while it runs the run, else from
the newest ``progress`` event that the process running it wrote. Throughput is measured
over the last few seconds; rate-limit use is how drained the governor's buckets are.
"""

from __future__ import annotations

import functools
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from laneway.agent import HybridAgent
from laneway.cost.answered import model_lines
from laneway.runs.progress import limit_use
from laneway.server.models import RunInfo, RunProgressEvent
from laneway.store import Counts, RunRow, Store
from laneway.store.statuses import JobStatus

WINDOW_S = 5.0


def models_of(store: Store, run_id: str, counts: Counts) -> list[str]:
    """The lines naming the models that answered the run (see ``model_lines``): read
    from the ledger when its succeeded jobs changed (a GROUP BY over them: ~140 ms for
    100,000 jobs on SQLite), else remembered."""
    return list(_models(store, run_id, counts[JobStatus.SUCCEEDED], counts.cost_usd))


@functools.lru_cache(maxsize=512)
def _models(store: Store, run_id: str, _succeeded: int, _cost: float) -> tuple[str, ...]:
    return tuple(model_lines(asdict(m) for m in store.answered_models(run_id)))


def run_info(run: RunRow, counts: Counts, *, live: bool, in_flight: int = 0,
             rate_per_s: float | None = None, models: list[str] | None = None) -> RunInfo:
    done = counts.final
    total = max(run.total, counts.total)
    return RunInfo(
        id=run.id, status=run.status, mode=run.mode, provider=run.provider, live=live,
        created_at=run.created_at, updated_at=run.updated_at, total=total, done=done,
        succeeded=counts[JobStatus.SUCCEEDED], errored=counts[JobStatus.ERRORED],
        canceled=counts[JobStatus.CANCELED], expired=counts[JobStatus.EXPIRED],
        pending=total - done,
        percent=round(100.0 * done / total, 2) if total else 0.0,
        input_tokens=counts.input_tokens, output_tokens=counts.output_tokens,
        cost_usd=round(counts.cost_usd, 6), in_flight=in_flight, rate_per_s=rate_per_s,
        models=models or [], note=run.note, resendable=None, gateway_batch=None)


def latest_progress(store: Store, run_id: str, after_id: int) -> tuple[int, dict[str, Any]]:
    """The newest ``progress`` event after ``after_id``: ``(its id, its data)``, or
    ``(after_id, {})`` when there is none."""
    newest: dict[str, Any] = {}
    while True:
        rows = store.events_since(run_id, after_id=after_id, kind="progress")
        if not rows:
            return after_id, newest
        after_id = int(rows[-1]["id"])
        newest = rows[-1]["data"]


@dataclass
class ProgressTracker:
    """Turns successive samples of one run into :class:`RunProgressEvent` s."""

    run_id: str
    samples: deque[tuple[float, int]] = field(
        default_factory=deque)
    event_id: int = 0
    governor: dict[str, Any] = field(default_factory=dict)
    in_flight: int = 0
    def sample(self, agent: HybridAgent) -> tuple[RunProgressEvent, bool] | None:
        """Read the run now (blocking: call it on the store's thread). ``None`` if there
        is no such run; else the event and whether the run has ended."""
        store = agent.store
        run = store.get_run(self.run_id)
        if run is None:
            return None
        counts = store.counts(self.run_id)
        live = agent.is_live(self.run_id)
        if live:
            self.governor = agent.governor.snapshot()
            self.in_flight = agent.progress(self.run_id).in_flight
        else:
            self.event_id, data = latest_progress(store, self.run_id, self.event_id)
            if data:
                self.governor = data.get("governor") or {}
                self.in_flight = 0 if run.status.ended else int(data.get("in_flight", 0))
        now = time.time()
        info = run_info(run, counts, live=live, models=models_of(store, self.run_id, counts))
        rate = self._rate(now, info.done)
        use = limit_use(self.governor)
        event = RunProgressEvent(
            run_id=run.id, status=run.status, live=live, total=info.total, done=info.done,
            succeeded=info.succeeded, errored=info.errored, canceled=info.canceled,
            pending=info.pending, percent=info.percent,
            in_flight=self.in_flight if live or not run.status.ended else 0,
            input_tokens=info.input_tokens, output_tokens=info.output_tokens,
            cost_usd=info.cost_usd, rate_per_s=round(rate, 3),
            limit_use=round(max(use.values()), 4) if use else None,
            limit_use_by_bucket={k: round(v, 4) for k, v in use.items()},
            governor=self.governor, at=now, models=info.models)
        ended = not live and (run.status.ended or (info.total > 0 and info.pending == 0))
        return event, ended

    def _rate(self, now: float, done: int) -> float:
        """Jobs finished per second over the last ``WINDOW_S``."""
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[1][0] >= WINDOW_S:
            self.samples.popleft()
        t0, done0 = self.samples[0]
        return max(0, done - done0) / (now - t0) if now > t0 else 0.0
