"""Several ``laneway serve`` processes and ``laneway worker``s on one account, sharing its
limits through the ledger: ``--workers N`` behind one port, or hosts on one PostgreSQL
ledger.

:class:`QuotaSharing` runs, beside one process's agent:

- a :class:`~laneway.governor.share.ShareSync` over the ledger's ``rate_shares`` table
  (:class:`LedgerBoard`): the process's buckets hold its share of every limit, which
  follows what each process wants, about once a second;
- a :class:`~laneway.governor.pauses.PauseSync` over the ``pauses`` table: a 429 seen by one
  process pauses every process's background lane for its ``retry-after``.

The limits themselves are the account's everywhere (given, or learnt from the headers
every process sees alike). Sharing is on when the ledger is PostgreSQL or with
``--workers`` (see :func:`sharing_wanted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from laneway.governor.core import Governor
from laneway.governor.pauses import PauseSync
from laneway.governor.share import Decide, Limits, ShareSync, Wanted
from laneway.store import AsyncStore, StoreSettings, rate_shares
from laneway.store.leases import new_worker_id
from laneway.store.rate_shares import ShareRow

log = logging.getLogger("laneway.server")


def sharing_wanted(db: str | Path | None, *, workers: int, share: bool | None) -> bool:
    """Share the account's limits through the ledger: as told, else when several
    processes may send on it (``--workers`` above 1, or a PostgreSQL ledger)."""
    if share is not None:
        return share
    return workers > 1 or StoreSettings.from_dsn(db).kind == "postgresql"


class LedgerBoard:
    """The :class:`~laneway.governor.share.Board` of the ledger's ``rate_shares``.

    Its beats run on a store thread of their own (over the same engine): a beat waits
    for every other process's (one at a time, see :mod:`laneway.store.rate_shares`),
    and the process's other ledger calls (a gateway request's key check and reservation,
    a run's results) must not queue behind that wait."""

    def __init__(self, astore: AsyncStore, process: str, *, live_s: float = 5.0) -> None:
        self.astore = AsyncStore(astore.store)
        self.process = process
        self.live_s = live_s
        self.host = socket.gethostname()
        self._joined = False

    async def exchange(self, wanted: Mapping[str, Wanted], limits: Mapping[str, Limits],
                       decide: Decide) -> Sequence[ShareRow]:
        if not self._joined:  # once: the others learn at once when it is gone
            await self.astore.call(rate_shares.join, self.astore.store, self.process)
            self._joined = True
        return await self.astore.call(
            rate_shares.heartbeat, self.astore.store, self.process, host=self.host,
            pid=os.getpid(), wanted=dict(wanted), limits=dict(limits), decide=decide,
            live_s=self.live_s)

    async def leave(self) -> None:
        try:
            await self.astore.call(rate_shares.leave, self.astore.store, self.process)
        finally:
            self.astore.close()


class QuotaSharing:
    """See the module docstring: :meth:`start` once the agent is open, :meth:`stop`."""

    def __init__(self, *, interval_s: float = 1.0, pause_poll_s: float = 0.5,
                 process: str | None = None) -> None:
        self.process = process or new_worker_id()
        self.interval_s = interval_s
        self.pause_poll_s = pause_poll_s
        self.shares: ShareSync | None = None
        self.pauses: PauseSync | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def processes(self) -> int:
        """Live processes on the account at the last beat (this one included)."""
        return self.shares.processes if self.shares is not None else 1

    async def start(self, astore: AsyncStore, governor: Governor, *,
                    on_notice: Callable[[str], None] = log.warning) -> None:
        self.shares = ShareSync(governor, LedgerBoard(astore, self.process),
                                process=self.process, interval_s=self.interval_s,
                                on_notice=on_notice)
        self.pauses = PauseSync(astore, governor, poll_s=self.pause_poll_s,
                                on_notice=on_notice)
        try:  # before the first request: it must find its share, not the whole limit
            await self.shares.beat()
        except Exception as exc:
            log.warning("could not share the rate limits yet: %s", exc)
        self._tasks = [asyncio.create_task(self.shares.run(), name="laneway-shares"),
                       asyncio.create_task(self.pauses.run(), name="laneway-pauses")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self.shares is not None:
            await self.shares.leave()
        if self.pauses is not None:
            await self.pauses.aclose()

