"""A run canceled by another process: cancel it here too.

Several processes may share a ledger (``laneway serve --workers``, hosts on PostgreSQL):
the one a cancel reaches may not be the one running the run. The runner follows the
run's status in the ledger and, once another process has recorded it ``canceled``,
cancels it here as well, so the jobs it holds are canceled rather than sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from laneway.store import AsyncStore
from laneway.store.statuses import RunStatus


async def follow_cancel(astore: AsyncStore, run_id: str, *, stop: asyncio.Event,
                        done: Callable[[], bool], cancel: Callable[[str], Awaitable[object]],
                        every_s: float = 1.0) -> None:
    """Look every ``every_s`` until ``stop`` is set or ``done()``; call ``cancel(run_id)``
    when the ledger says the run was canceled."""
    while not stop.is_set() and not done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        if stop.is_set() or done():
            return
        with contextlib.suppress(Exception):  # the ledger away: look again later
            run = await astore.get_run(run_id)
            if run is not None and run.status == RunStatus.CANCELED:
                await cancel(run_id)
                return
