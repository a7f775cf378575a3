"""Carrying a gateway batch to its end: one task per batch, in the process that serves.

The task (:meth:`BatchDriver.drive`) submits the batch's run to the agent (which
resumes it if the ledger has it: a run re-attaches to the upstream batches it had
submitted, and never submits their requests again), waits for the run to end, and marks
the batch ended when every request of it has its result. A cancel asked meanwhile
(:meth:`BatchDriver.poke`) is carried out here, in the same order every time: the run's
own work stops, requests not sent become ``canceled``, its upstream batches are
canceled, and what they still finished is collected before the batch ends.

An upstream without Message Batches (404 or 405 to a batch's create) turns the batch
into a realtime run once (``on_no_batches``: its reservation grows to the realtime price,
its mode says realtime), never a loop of creates. A run that stops short (the upstream
unreachable for a while) is submitted again after :data:`RETRY_S`; when the gateway
stops, the runs stop with it (their upstream batches keep running) and
:meth:`BatchDriver.resume` takes every batch not ended up again when the next gateway
starts on the same ledger. At its expiry (24 h after its creation) a batch not ended is
stopped as a cancel stops it, and what it did not finish is ``expired``, as the API's
batches are.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from laneway.errors import LanewayError
from laneway.jobs.formats import JobDefaults
from laneway.runs.cancel import cancel as cancel_run
from laneway.store.gateway_batches import GatewayBatch
from laneway.store.statuses import RunStatus

if TYPE_CHECKING:
    from laneway.agent import HybridAgent

log = logging.getLogger("laneway.gateway")

#: What fills the fields a job leaves out: nothing, as every job of a gateway batch
#: names its model and max_tokens (the others were refused at create).
GATEWAY_DEFAULTS = JobDefaults()
#: How long after a run stopped short it is submitted again.
RETRY_S = 10.0
#: How often a running batch is looked at again in the ledger (a cancel asked by
#: another process: ``laneway keys revoke`` cancels the key's batches).
POLL_S = 2.0


class BatchDriver:
    def __init__(self, agent: HybridAgent, *, cancel_wait_s: float = 10.0,
                 on_end: Callable[[str], Awaitable[None]] | None = None,
                 on_no_batches: Callable[[str, str], Awaitable[bool]] | None = None) -> None:
        self.agent = agent
        #: Called once a batch has ended (its reservation is settled there).
        self.on_end = on_end
        #: Called with a batch's id and why when the upstream has no Message Batches:
        #: True if the batch goes realtime instead.
        self.on_no_batches = on_no_batches
        self.cancel_wait_s = cancel_wait_s
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pokes: dict[str, asyncio.Event] = {}
        self._closing = False

    def start(self, batch_id: str) -> None:
        """Drive ``batch_id`` (once: a batch already driven is left as it is)."""
        if self._closing or batch_id in self._tasks:
            return
        self._pokes[batch_id] = asyncio.Event()
        self._tasks[batch_id] = asyncio.create_task(self.drive(batch_id),
                                                    name=f"laneway-batch-{batch_id}")

    def poke(self, batch_id: str) -> None:
        """Something changed (a cancel): look at the batch again now."""
        poke = self._pokes.get(batch_id)
        if poke is not None:
            poke.set()

    async def resume(self) -> int:
        """Drive every batch not ended; returns how many."""
        astore = self.agent.astore
        batches = await astore.call(astore.store.unended_gateway_batches)
        for batch in batches:
            self.start(batch.id)
        if batches:
            log.info("gateway: resumed %d message batch(es)", len(batches))
        return len(batches)

    async def aclose(self) -> None:
        self._closing = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def drive(self, batch_id: str) -> None:
        try:
            while not self._closing:
                if await self._step(batch_id):
                    return
        finally:
            self._tasks.pop(batch_id, None)
            self._pokes.pop(batch_id, None)

    async def _step(self, batch_id: str) -> bool:
        """One look at the batch; True once it has ended (or is gone)."""
        astore = self.agent.astore
        store = astore.store
        poke = self._pokes[batch_id]
        batch = await astore.call(store.gateway_batch, batch_id, key_id=None, any_key=True)
        if batch is None or batch.ended_at is not None:
            return True
        poke.clear()
        expired = batch.cancel_initiated_at is None and time.time() >= batch.expires_at
        try:
            await self._advance(batch, stop=expired or batch.cancel_initiated_at is not None)
            if self.agent.is_live(batch_id):
                await _until(poke, self.agent.wait(batch_id, timeout_s=None if expired else
                                                   max(0.0, batch.expires_at - time.time())),
                             timeout_s=POLL_S)
            if await self._finished(batch_id):
                if expired:
                    await astore.call(store.expire_canceled, batch_id)
                await astore.call(store.end_gateway_batch, batch_id)
                if self.on_end is not None:
                    await self.on_end(batch_id)
                return True
            if self.agent.is_live(batch_id):
                return False  # still running: look at the batch again
        except (LanewayError, OSError) as exc:
            log.warning("gateway batch %s: %s (trying again in %.0f s)", batch_id, exc,
                        RETRY_S)
        # The run stopped short: again after a while; at once for a cancel, or the expiry.
        left_s = RETRY_S if expired else batch.expires_at - time.time()
        await _until(poke, asyncio.sleep(min(RETRY_S, max(0.0, left_s))))
        return False

    async def _advance(self, batch: GatewayBatch, *, stop: bool) -> None:
        """Submit (resume) the run; with ``stop`` (a cancel asked, or the batch expired),
        cancel it first if that is not done yet: then submitting it only collects what
        its canceled upstream batches still hold."""
        astore = self.agent.astore
        run = await astore.call(astore.store.get_run, batch.id)
        if stop and run is None:  # not made yet: make it, so that its jobs are canceled
            await self._submit(batch)
            run = await astore.call(astore.store.get_run, batch.id)
        if stop and run is not None and run.status != RunStatus.CANCELED:
            await cancel_run(batch.id, astore=astore, provider=self.agent.provider,
                             stop_live=self.agent.stop_live, wait_s=self.cancel_wait_s,
                             on_notice=log.info)
        await self._submit(batch)

    async def _submit(self, batch: GatewayBatch) -> None:
        if batch.input_path is None or self.agent.is_live(batch.id):
            return
        switch = None if self.on_no_batches is None else \
            functools.partial(self.on_no_batches, batch.id)
        await self.agent.submit(Path(batch.input_path), run_name=batch.id,
                                defaults=GATEWAY_DEFAULTS, mode=batch.mode,
                                deadline_at=batch.deadline_at, on_no_batches=switch)

    async def _finished(self, batch_id: str) -> bool:
        astore = self.agent.astore
        counts = await astore.call(astore.store.counts, batch_id)
        return counts.remaining == 0 and not self.agent.is_live(batch_id)


async def _until(poke: asyncio.Event, work: Awaitable[object], *,
                 timeout_s: float | None = None) -> None:
    """Wait for ``work`` (its failure is the run's, recorded in the ledger) or ``poke``
    (or ``timeout_s``)."""
    waits = [asyncio.ensure_future(poke.wait()), asyncio.ensure_future(work)]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        for w in waits:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await w
