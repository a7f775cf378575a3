"""What the parts of the native runner share while one run's batches are in flight.

The runner (:mod:`.runner`) owns one :class:`NativeState`; submitting (:mod:`.submit`),
polling (:mod:`.poll`), collecting (:mod:`.collect`) and the deadline fallback
(:mod:`.fallback`) each take it, so none of them needs the runner itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from laneway.cost import tokens
from laneway.cost.prices import NO_PRICES, PriceTable, worst_cost
from laneway.provider.batches import Batches, BatchInfo
from laneway.provider.client import Provider
from laneway.runners.native.options import NativeOptions, NativeTally
from laneway.store import AsyncStore, Store
from laneway.store.batches import BatchRow


@dataclass(eq=False)
class NativeState:
    run_id: str
    astore: AsyncStore
    provider: Provider
    options: NativeOptions
    notice: Callable[[str], None]
    max_attempts: int = 6
    budget_usd: float | None = None
    worker_id: str = "main"
    #: Prices the run was given for models not in the table (``--price``).
    prices: PriceTable = NO_PRICES
    on_progress: Callable[[NativeTally], None] | None = None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    tally: NativeTally = field(default_factory=NativeTally)
    #: The batch rows this worker owns, by ledger id, and what the provider last said.
    rows: dict[str, BatchRow] = field(default_factory=dict)
    seen: dict[str, BatchInfo] = field(default_factory=dict)
    #: The budget holds back the next chunk until a batch in flight ends.
    budget_wait: bool = False
    #: The provider's Message Batches calls.
    batches: Batches = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.batches = Batches(self.provider)

    @property
    def store(self) -> Store:
        return self.astore.store

    def worst_usd(self, params: dict[str, Any]) -> float:
        """The most a request can cost in a batch (0 when local or unpriced)."""
        return worst_cost(str(params.get("model", "")), tokens.input_tokens(params),
                          int(params.get("max_tokens", 0)), local=self.provider.costs_nothing,
                          batch=True, prices=self.prices)

    async def budget_left_usd(self) -> float | None:
        """What the run's budget has left after what every process working on it has
        spent or reserved (its ledger total, see :mod:`laneway.store.run_budget`)."""
        if self.budget_usd is None:
            return None
        return self.budget_usd - await self.astore.call(self.store.committed_usd,
                                                         self.run_id)

    async def row(self, batch_id: str) -> BatchRow:
        rows = await self.astore.run_batches(self.run_id)
        return next(r for r in rows if r.id == batch_id)

    def forget(self, batch_id: str) -> None:
        row = self.rows.pop(batch_id, None)
        self.seen.pop(batch_id, None)
        if row is not None:
            self.tally.in_flight = max(0, self.tally.in_flight - row.request_count)

    def progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.tally)
