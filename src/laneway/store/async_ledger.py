"""The ledger's methods as typed coroutines, for the async side.

Each method of :class:`AsyncLedger` is the :class:`~laneway.store.ledger.Store` method
of the same name (or the :mod:`~laneway.store.pauses` function it names), run through
:meth:`AsyncLedger.call` on the ledger's one thread: ``await astore.counts(run_id)``
instead of ``await astore.counts(run_id)``, so the checker sees the
arguments and the caller reads what is asked. ``call`` stays for a read made of several
queries that should take one hop to the thread (a page of a listing, a progress sample).
:class:`~laneway.store.writer.AsyncStore` provides ``call``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from laneway.store import pauses
from laneway.store.batches import BatchRow, Begun, Member
from laneway.store.ledger import Counts, RunRow, Store
from laneway.store.queue import ClaimedJob, Finished
from laneway.store.runqueries import Answered
from laneway.store.statuses import BatchStatus, JobStatus, RunStatus

P = ParamSpec("P")
T = TypeVar("T")


class AsyncLedger(ABC):
    store: Store

    @abstractmethod
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the ledger's thread and return what it returns."""

    # -- runs ----------------------------------------------------------------------------
    async def get_run(self, run_id: str) -> RunRow | None:
        return await self.call(self.store.get_run, run_id)

    async def open_runs(self) -> list[RunRow]:
        return await self.call(self.store.open_runs)

    async def set_run_status(self, run_id: str, status: RunStatus, *,
                             mode: str | None = None, provider: str | None = None) -> None:
        """``Store.update_run`` with the status (and, when given, the mode and provider)."""
        values: dict[str, Any] = {"status": status}
        if mode is not None:
            values["mode"] = mode
        if provider is not None:
            values["provider"] = provider
        await self.call(self.store.update_run, run_id, **values)

    async def counts(self, run_id: str) -> Counts:
        return await self.call(self.store.counts, run_id)

    async def unpriced_models(self, run_id: str) -> list[str]:
        return await self.call(self.store.unpriced_models, run_id)

    async def answered_models(self, run_id: str) -> list[Answered]:
        return await self.call(self.store.answered_models, run_id)

    async def results(self, run_id: str) -> list[tuple[str, dict[str, Any]]]:
        """Every result of ``Store.iter_results``, read in one hop."""
        return await self.call(lambda: list(self.store.iter_results(run_id)))

    async def add_event(self, run_id: str, kind: str, data: dict[str, Any]) -> None:
        await self.call(self.store.add_event, run_id, kind, data)

    # -- jobs ----------------------------------------------------------------------------
    async def claim(self, run_id: str, *, worker: str, limit: int, lease_s: float,
                    statuses: Sequence[JobStatus] = (JobStatus.PENDING,)) -> list[ClaimedJob]:
        return await self.call(self.store.claim, run_id, worker=worker, limit=limit,
                               lease_s=lease_s, statuses=statuses)

    async def extend_lease(self, run_id: str, seqs: Sequence[int], *, worker: str,
                           lease_s: float) -> int:
        return await self.call(self.store.extend_lease, run_id, seqs, worker=worker,
                               lease_s=lease_s)

    async def release(self, run_id: str, seqs: Sequence[int], *, worker: str | None = None,
                      attempts: dict[int, tuple[int, int]] | None = None) -> None:
        await self.call(self.store.release, run_id, seqs, worker=worker, attempts=attempts)

    async def release_all(self, run_id: str, *, worker: str | None = None) -> int:
        return await self.call(self.store.release_all, run_id, worker=worker)

    async def lease_wait_s(self, run_id: str) -> float | None:
        return await self.call(self.store.lease_wait_s, run_id)

    async def finish(self, items: Sequence[Finished]) -> list[int]:
        return await self.call(self.store.finish, items)

    async def unsent_seqs(self, run_id: str) -> list[int]:
        return await self.call(self.store.unsent_seqs, run_id)

    async def cancel_unsent(self, run_id: str) -> int:
        return await self.call(self.store.cancel_unsent, run_id)

    # -- native batches ------------------------------------------------------------------
    async def begin_batch(self, *, run_id: str, batch_id: str, seqs: Sequence[int],
                          size_bytes: int, worker: str, lease_s: float = 300.0,
                          reserve_usd: float = 0.0, budget_usd: float | None = None) -> Begun:
        return await self.call(self.store.begin_batch, run_id=run_id, batch_id=batch_id,
                               seqs=seqs, size_bytes=size_bytes, worker=worker,
                               lease_s=lease_s, reserve_usd=reserve_usd,
                               budget_usd=budget_usd)

    async def batch_submitted(self, batch_id: str, provider_batch_id: str) -> None:
        await self.call(self.store.batch_submitted, batch_id, provider_batch_id)

    async def set_batch_status(self, batch_id: str, status: BatchStatus,
                               counts: dict[str, int] | None = None) -> None:
        await self.call(self.store.set_batch_status, batch_id, status, counts)

    async def end_batch(self, batch_id: str, counts: dict[str, int] | None,
                        ended_at: float | None = None) -> int:
        return await self.call(self.store.end_batch, batch_id, counts, ended_at)

    async def abandon_batch(self, batch_id: str, *, refund_attempt: bool = False) -> int:
        return await self.call(self.store.abandon_batch, batch_id,
                               refund_attempt=refund_attempt)

    async def file_results(self, run_id: str, batch_id: str, items: Sequence[Finished],
                           again: Sequence[int], worst: Mapping[int, float]
                           ) -> tuple[list[int], int]:
        return await self.call(self.store.file_results, run_id, batch_id, items, again, worst)

    async def own_batches(self, run_id: str, *, worker: str,
                          lease_s: float = 300.0) -> list[BatchRow]:
        return await self.call(self.store.own_batches, run_id, worker=worker, lease_s=lease_s)

    async def run_batches(self, run_id: str) -> list[BatchRow]:
        return await self.call(self.store.run_batches, run_id)

    async def known_provider_ids(self, ids: Sequence[str]) -> set[str]:
        return await self.call(self.store.known_provider_ids, ids)

    async def batch_members(self, run_id: str, batch_id: str) -> dict[int, Member]:
        return await self.call(self.store.batch_members, run_id, batch_id)

    async def submitted_params(self, run_id: str, batch_id: str) -> dict[int, dict[str, Any]]:
        return await self.call(self.store.submitted_params, run_id, batch_id)

    async def batch_durations_s(self, *, provider: str, limit: int = 20) -> list[float]:
        return await self.call(self.store.batch_durations_s, provider=provider, limit=limit)

    # -- shared pauses -------------------------------------------------------------------
    async def publish_pause(self, model: str, *, until: float, reason: str = "429") -> None:
        await self.call(pauses.publish, self.store, model, until=until, reason=reason)

    async def active_pauses(self, *, now: float | None = None) -> list[pauses.Pause]:
        return await self.call(pauses.active, self.store, now=now)
