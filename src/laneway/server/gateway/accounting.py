"""Every gateway request into the ledger, completed in groups, off the request's path.

:class:`Recorder` is an observer of the :class:`~.service.Gateway`: each finished
request is queued in memory and written every :data:`FLUSH_S` in one transaction, so a
relayed request never waits on the disk once answered: a request that was sent has its
row already (its reservation, :mod:`.pipeline`), which is settled
(:class:`~laneway.store.reservations.Settle`); one refused before its reservation
becomes a :class:`~laneway.store.TrafficRecord`. A row a crash leaves ``reserved`` is
interrupted at worst case by the next process to start.
A write that fails (the database is out) is kept and tried again with the next group;
:meth:`Recorder.aclose` writes what is left when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from laneway.errors import LanewayError
from laneway.server.gateway.exchange import Exchange
from laneway.store import AsyncStore, Store, TrafficRecord
from laneway.store.reservations import Settle

log = logging.getLogger(__name__)

FLUSH_S = 0.5
#: Records kept while the ledger cannot be written, beyond which the oldest are dropped.
MAX_PENDING = 100_000


def settle_of(ex: Exchange) -> Settle:
    assert ex.row_id is not None
    tokens = ex.tokens
    return Settle(
        row_id=ex.row_id, key_id=ex.key_id, worst_usd=ex.worst_usd, cost_usd=ex.cost_usd,
        status=ex.status, input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_creation_input_tokens=tokens.cache_creation_input_tokens,
        cache_read_input_tokens=tokens.cache_read_input_tokens, queued_s=ex.queued_s,
        ttft_s=ex.ttft_s, duration_s=ex.duration_s, upstream_errors=ex.upstream_errors,
        answered_model=ex.answered_model, asked_cost_usd=ex.asked_cost_usd)


def record_of(ex: Exchange) -> TrafficRecord:
    tokens = ex.tokens
    return TrafficRecord(
        key_id=ex.key_id, model=ex.model, lane=str(ex.lane), status=ex.status,
        streamed=ex.streamed, input_tokens=tokens.input_tokens,
        output_tokens=tokens.output_tokens,
        cache_creation_input_tokens=tokens.cache_creation_input_tokens,
        cache_read_input_tokens=tokens.cache_read_input_tokens, cost_usd=ex.cost_usd,
        queued_s=ex.queued_s, ttft_s=ex.ttft_s, duration_s=ex.duration_s,
        upstream_errors=ex.upstream_errors, started_at=ex.started_at,
        answered_model=ex.answered_model, asked_cost_usd=ex.asked_cost_usd)


def _write(store: Store, settles: list[Settle], records: list[TrafficRecord]) -> None:
    if settles:
        store.settle_requests(settles)
    if records:
        store.record_requests(records)


class Recorder:
    def __init__(self, astore_of: Callable[[], AsyncStore]) -> None:
        self._astore_of = astore_of
        self._pending: list[Exchange] = []
        self._task: asyncio.Task[None] | None = None
        self.written = 0

    def __call__(self, ex: Exchange) -> None:
        self._pending.append(ex)
        if len(self._pending) > MAX_PENDING:
            del self._pending[: len(self._pending) - MAX_PENDING]
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_S)
            if await self.flush():
                return

    async def flush(self) -> bool:
        """Write what is pending; False if the ledger could not take it (kept)."""
        batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            astore = self._astore_of()
            settles = [settle_of(ex) for ex in batch if ex.row_id is not None]
            records = [record_of(ex) for ex in batch if ex.row_id is None]
            await astore.call(_write, astore.store, settles, records)
        except (LanewayError, OSError) as exc:
            log.warning("gateway traffic not recorded yet (%s); trying again", exc)
            self._pending[:0] = batch
            return False
        self.written += len(batch)
        return True

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
