"""A revoke reaches the requests its key has waiting in a lane.

Every request reads its key when it arrives (:mod:`.clients`); one that then waits for
the governor is watched here: while any request waits, one ledger read every
:data:`POLL_S` asks which of their keys were revoked, and wakes those requests, which
are refused (401) before anything is sent. A request that waited is also checked once
more when its turn comes (:meth:`Revocations.allowed`), so none is sent for a key
revoked before it left the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from laneway.errors import LanewayError
from laneway.store import AsyncStore

T = TypeVar("T")
log = logging.getLogger(__name__)

#: How often the keys of waiting requests are read again.
POLL_S = 0.5


class Revoked(Exception):
    """The request's key was revoked while it waited in its lane: it is not sent."""


class Revocations:
    def __init__(self, astore_of: Callable[[], AsyncStore], poll_s: float = POLL_S) -> None:
        self._astore_of = astore_of
        self.poll_s = poll_s
        self._waiting: dict[str, set[asyncio.Future[None]]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watching(self, key_id: str | None) -> Iterator[asyncio.Future[None] | None]:
        """A future set if ``key_id`` is revoked while the block runs (None: no key)."""
        if key_id is None:
            yield None
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key_id, set()).add(fut)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._poll())
        try:
            yield fut
        finally:
            futs = self._waiting.get(key_id)
            if futs is not None:
                futs.discard(fut)
                if not futs:
                    del self._waiting[key_id]

    async def allowed(self, key_id: str | None) -> bool:
        """Whether the key is still active (one ledger read)."""
        return key_id is None or await self._astore_of().key_by_id(key_id) is not None

    async def _poll(self) -> None:
        while self._waiting:
            await asyncio.sleep(self.poll_s)
            ids = list(self._waiting)
            try:
                gone = await self._astore_of().revoked_keys(ids)
            except (LanewayError, OSError) as exc:
                log.warning("gateway: could not read revoked keys (%s)", exc)
                continue
            for key_id in gone:
                for fut in self._waiting.get(key_id, ()):
                    if not fut.done():
                        fut.set_result(None)


class Outrun(Exception):
    """:func:`before` ended without ``work``'s result (``work`` was cancelled)."""


async def before(work: Awaitable[T], other: asyncio.Future[None], *,
                 within_s: float | None = None) -> T:
    """``work``'s result if it finishes before ``other`` is done and within ``within_s``;
    else ``work`` is cancelled and :class:`Outrun` raised."""
    task = asyncio.ensure_future(work)
    waits: set[asyncio.Future[object]] = {task, other}  # type: ignore[arg-type]
    try:
        await asyncio.wait(waits, timeout=within_s,
                           return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise Outrun


async def unless(work: Awaitable[T], stop: asyncio.Future[None] | None) -> T:
    """``work``'s result, or :class:`Revoked` (``work`` cancelled) if ``stop`` is set
    first."""
    if stop is None:
        return await work
    try:
        return await before(work, stop)
    except Outrun:
        raise Revoked from None
