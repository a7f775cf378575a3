"""One ledger poll per run, shared by every client watching that run's events.

``GET /v1/runs/{id}/events`` used to sample the ledger for each client twice a second,
on the store's one thread: 500 idle dashboards made ``GET /v1/runs`` wait 2.3 s. Now
the first listener of a run starts one poller; every listener of the run gets each
sample through its own queue (of one: a slow client skips to the newest sample, and
the last one, ``end``, is never skipped); the poller stops with its last listener, or
when the run ends. :attr:`EventsHub.polls` counts the samples taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from laneway.agent import HybridAgent
from laneway.server.progress import ProgressTracker

log = logging.getLogger("laneway.server")

#: One sample of a run: the event's JSON (made once for every listener) and whether the
#: run has ended; ``None``: no such run (or the ledger could not be read).
Sample = tuple[str, bool] | None


@dataclass(eq=False)
class _Feed:
    run_id: str
    listeners: set[asyncio.Queue[Sample]] = field(default_factory=set)
    latest: list[Sample] = field(default_factory=list)  # empty until the first sample
    task: asyncio.Task[None] | None = None


def _offer(queue: asyncio.Queue[Sample], sample: Sample) -> None:
    """Put ``sample`` in a queue of one, replacing a sample not read yet."""
    if queue.full():
        queue.get_nowait()
    queue.put_nowait(sample)


class EventsHub:
    """The pollers of a server, one per watched run."""

    def __init__(self, agent: HybridAgent, interval_s: float) -> None:
        self.agent = agent
        self.interval_s = interval_s
        #: Ledger samples taken, over all runs (a test or a benchmark reads it).
        self.polls = 0
        self._feeds: dict[str, _Feed] = {}

    def polled_runs(self) -> list[str]:
        """The runs polled now (those with a listener, until they end)."""
        return list(self._feeds)

    def listeners(self, run_id: str) -> int:
        feed = self._feeds.get(run_id)
        return len(feed.listeners) if feed else 0

    @contextlib.asynccontextmanager
    async def listen(self, run_id: str) -> AsyncIterator[asyncio.Queue[Sample]]:
        """A queue receiving the run's samples, from the newest one taken, until the
        run ends (the last sample is ``None`` or says ended)."""
        feed = self._feeds.get(run_id)
        if feed is None:
            feed = self._feeds[run_id] = _Feed(run_id)
            feed.task = asyncio.create_task(self._poll(feed), name=f"laneway-events-{run_id}")
        queue: asyncio.Queue[Sample] = asyncio.Queue(maxsize=1)
        if feed.latest:
            queue.put_nowait(feed.latest[0])
        feed.listeners.add(queue)
        try:
            yield queue
        finally:
            feed.listeners.discard(queue)
            if not feed.listeners:
                self._drop(feed)
                if feed.task is not None and not feed.task.done():
                    feed.task.cancel()

    def _drop(self, feed: _Feed) -> None:
        if self._feeds.get(feed.run_id) is feed:
            del self._feeds[feed.run_id]

    async def _poll(self, feed: _Feed) -> None:
        tracker = ProgressTracker(feed.run_id)
        try:
            while True:
                sample: Sample = None
                try:
                    read = await self.agent.astore.call(tracker.sample, self.agent)
                    if read is not None:
                        sample = (read[0].model_dump_json(), read[1])
                except Exception:
                    log.exception("reading the progress of run %r failed", feed.run_id)
                self.polls += 1
                feed.latest[:] = [sample]
                for queue in feed.listeners:
                    _offer(queue, sample)
                if sample is None or sample[1]:
                    return
                await asyncio.sleep(self.interval_s)
        finally:
            self._drop(feed)  # the next listener of an ended run starts afresh
