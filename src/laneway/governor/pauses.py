"""429 pauses shared by processes on one account, through the ledger's ``pauses`` table.

Used by ``laneway worker`` and by ``laneway serve`` when several gateway processes share
one account (see :mod:`laneway.store.pauses` for the table).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from laneway.governor.core import Governor
from laneway.store import AsyncStore


class PauseSync:
    """Shares 429 pauses between workers through the ledger's ``pauses`` table.

    ``governor.on_pause`` publishes this worker's pauses; :meth:`run` polls the table
    and applies the others' with ``governor.pause(..., publish=False)``.
    """

    def __init__(self, astore: AsyncStore, governor: Governor, *, poll_s: float = 0.5,
                 on_notice: Callable[[str], None] | None = None) -> None:
        self.astore = astore
        self.governor = governor
        self.poll_s = poll_s
        self.notice = on_notice or (lambda _msg: None)
        self.published = 0
        self.applied = 0
        #: The latest pause end (wall time) this worker knows of, per model.
        self._known: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        governor.on_pause = self._on_pause

    def _on_pause(self, model: str, until: float, reason: str) -> None:
        self._known[model] = max(until, self._known.get(model, 0.0))
        task = asyncio.get_running_loop().create_task(self._publish(model, until, reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, model: str, until: float, reason: str) -> None:
        try:
            await self.astore.publish_pause(model, until=until, reason=reason)
            self.published += 1
        except Exception as exc:  # the ledger is away: the pause still holds here
            self.notice(f"could not share a pause of {model}: {exc}")

    async def poll(self) -> int:
        """Apply the pauses others published since the last poll; returns how many."""
        now = time.time()
        found = await self.astore.active_pauses(now=now)
        applied = 0
        for p in found:
            # Re-applying a pause already known would only add noise to the history.
            if p.until <= self._known.get(p.model, 0.0) + 0.01:
                continue
            self._known[p.model] = p.until
            self.governor.pause(p.model, p.until - now, reason=f"shared: {p.reason}",
                                publish=False)
            applied += 1
        self.applied += applied
        return applied

    async def run(self) -> None:
        while True:
            try:
                await self.poll()
            except Exception as exc:
                self.notice(f"could not read shared pauses: {exc}")
            await asyncio.sleep(self.poll_s)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task
