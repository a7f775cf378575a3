"""A realtime runner watched: its progress to a callback and to the ledger's events.

``laneway.run()`` and ``HybridAgent`` both run a :class:`RealtimeRunner` this way:
``on_progress`` every tick (a progress bar), a ``progress`` event with the governor's
snapshot every ``event_every_s`` (the dashboard, ``GET /v1/runs/{id}/events``), and a
final one (phase ``done``, with the governor's recent history) when the runner ends.
Each event comes with a compact sample (``run_samples``: jobs done, in flight, the rate
limits' use), which a finished run's page draws.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from laneway.runs.progress import Progress, limit_use, progress_of
from laneway.store.runviews import RunSample

if TYPE_CHECKING:
    from laneway.runners.realtime import RealtimeRunner
    from laneway.runners.tally import Tally
    from laneway.store import Counts

#: How often ``on_progress`` is called while the runner works.
TICK_S = 0.1


class RunWatch:
    """Progress of one realtime runner over the ledger's counts when it started."""

    def __init__(self, runner: RealtimeRunner, *, total: int, before: Counts,
                 on_progress: Callable[[Progress], None] | None = None,
                 event_every_s: float = 1.0) -> None:
        self.runner = runner
        self.total = total
        self.before = before
        self.on_progress = on_progress
        self.event_every_s = event_every_s

    def progress(self, phase: str = "running") -> Progress:
        return progress_of(self.runner.run_id, self.total, self.before, self.runner.tally,
                           phase=phase)

    async def write(self, phase: str = "running") -> Progress:
        """Record a ``progress`` event (with the governor's history when ``done``) and
        a sample."""
        p = self.progress(phase)
        governor = self.runner.governor
        snapshot = governor.snapshot()
        data = {**asdict(p), "governor": snapshot}
        if phase == "done":
            data["history"] = list(governor.history)[-200:]
        astore = self.runner.astore
        await astore.add_event(self.runner.run_id, "progress", data)
        use = {k: round(v, 4) for k, v in limit_use(snapshot).items()}
        await astore.call(astore.store.add_run_sample, RunSample(
            run_id=self.runner.run_id, at=time.time(), done=p.done, in_flight=p.in_flight,
            limit_use=max(use.values()) if use else None, limit_use_by_bucket=use))
        return p

    async def run(self, stop_event: asyncio.Event | None = None) -> Tally:
        """Run the runner (stopped as by Ctrl-C when ``stop_event`` is set); then the
        final progress, and the share of each known rate limit the run achieved."""
        tasks = [asyncio.create_task(self._ticker())]
        if stop_event is not None:
            tasks.append(asyncio.create_task(self._watch_stop(stop_event)))
        try:
            tally = await self.runner.run()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
        final = await self.write("done")
        if self.on_progress is not None:
            self.on_progress(final)
        tally.utilization = self._utilization(time.monotonic() - tally.started_at)
        return tally

    def _utilization(self, elapsed_s: float) -> dict[str, float]:
        governor = self.runner.governor
        return {f"{model}:{kind}": round(share, 4)
                for model in governor.models
                for kind, share in governor.utilization(model, elapsed_s=elapsed_s).items()}

    async def _ticker(self) -> None:
        if self.on_progress is None:  # events only
            while True:
                await asyncio.sleep(self.event_every_s)
                await self.write()
        last_event = 0.0
        while True:
            await asyncio.sleep(min(TICK_S, self.event_every_s))
            self.on_progress(self.progress())
            if time.monotonic() - last_event >= self.event_every_s:
                last_event = time.monotonic()
                await self.write()

    async def _watch_stop(self, stop_event: asyncio.Event) -> None:
        await stop_event.wait()
        self.runner.stop("interrupted")
