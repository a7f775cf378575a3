"""The gateway's ledger calls from async code: typed methods of
:class:`laneway.store.writer.AsyncStore` (which inherits :class:`GatewayCalls`).

Each runs the :class:`~laneway.store.ledger.Store` method of the same name on the
store's one thread (``AsyncStore.call``), so the event loop never waits on the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from laneway.store.holders import Identity
from laneway.store.keys import ClientKey
from laneway.store.ledger import Store
from laneway.store.reservations import Reservation, Settle
from laneway.store.traffic import TrafficRecord

P = ParamSpec("P")
T = TypeVar("T")


class GatewayCalls:
    """Client keys and traffic, awaited; mixed into ``AsyncStore``."""

    store: Store

    if TYPE_CHECKING:
        async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T: ...

        async def call_here(self, fn: Callable[Concatenate[Store, P], T], *args: P.args,
                            **kwargs: P.kwargs) -> T: ...

    # -- keys ----------------------------------------------------------------------------
    async def create_key(self, name: str, *, budget_usd: float | None = None,
                         rpm: int | None = None, lane: str | None = None
                         ) -> tuple[ClientKey, str]:
        """:meth:`~laneway.store.keys.KeyLedger.create_key`: the key and its value."""
        return await self.call(self.store.create_key, name, budget_usd=budget_usd, rpm=rpm,
                               lane=lane)

    async def find_key(self, secret: str) -> ClientKey | None:
        """:meth:`~laneway.store.keys.KeyLedger.find_key`: the active key, or None."""
        return await self.call(self.store.find_key, secret)

    async def key_by_id(self, key_id: str) -> ClientKey | None:
        return await self.call(self.store.key_by_id, key_id)

    async def revoked_keys(self, key_ids: list[str]) -> list[str]:
        return await self.call(self.store.revoked_keys, key_ids)

    async def check_key(self, secret: str) -> tuple[ClientKey | None, float | None]:
        """:meth:`~laneway.store.keys.KeyLedger.check_key`: the key, and its rate's wait."""
        return await self.call_here(Store.check_key, secret)

    async def list_keys(self, include_revoked: bool = False) -> list[ClientKey]:
        return await self.call(self.store.list_keys, include_revoked)

    async def revoke_key(self, name_or_prefix: str) -> ClientKey:
        return await self.call(self.store.revoke_key, name_or_prefix)

    # -- traffic -------------------------------------------------------------------------
    async def record_requests(self, records: Sequence[TrafficRecord]) -> None:
        """:meth:`~laneway.store.traffic.TrafficLedger.record_requests`, one transaction."""
        await self.call(self.store.record_requests, records)

    # -- reservations --------------------------------------------------------------------
    async def reserve(self, r: Reservation) -> int | None:
        """:meth:`~laneway.store.reservations.ReservationLedger.reserve`: the row id."""
        return await self.call_here(Store.reserve, r)

    async def settle_requests(self, settles: Sequence[Settle]) -> int:
        return await self.call(self.store.settle_requests, settles)

    async def interrupt_requests(self, dead: Callable[[str, float, Identity | None], bool]) -> int:
        return await self.call(self.store.interrupt_requests, dead)

    async def settle_batch(self, batch_id: str, *, at: float) -> Settle | None:
        return await self.call(self.store.settle_batch, batch_id, at=at)

    async def spent_by_key(self) -> dict[str, float]:
        return await self.call(self.store.spent_by_key)

    async def traffic_by_key(self, since: float | None = None) -> list[dict[str, Any]]:
        return await self.call(self.store.traffic_by_key, since)

    async def traffic_timeline(self, since: float, bucket_s: int = 10
                               ) -> list[dict[str, Any]]:
        return await self.call(self.store.traffic_timeline, since, bucket_s)
