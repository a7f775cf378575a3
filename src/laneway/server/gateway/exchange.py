"""One request through the gateway, as the ledger and the live pages see it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from laneway.cost.answered import price_answer
from laneway.cost.prices import Usage
from laneway.governor.buckets import Lane

#: What nginx logs for a client that closed its connection before the answer.
CLIENT_CLOSED = 499


@dataclass(slots=True)
class Exchange:
    """What happened to one request: who sent it, how long it waited, what it used."""

    model: str
    lane: Lane
    streamed: bool
    key_id: str | None = None
    key_name: str = "local"
    #: When it arrived: wall clock for the ledger, monotonic for durations.
    started_at: float = field(default_factory=time.time)
    arrived: float = field(default_factory=time.monotonic)
    status: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    queued_s: float = 0.0
    ttft_s: float | None = None
    duration_s: float = 0.0
    #: Upstream errors the gateway absorbed by trying again (429, 529, 5xx, no answer).
    upstream_errors: int = 0
    #: It was handed to the upstream at least once.
    sent: bool = False
    #: The worst this request can cost, held against its key's budget while it runs.
    worst_usd: float = 0.0
    cost_usd: float | None = None
    #: Its row in the ledger, written (``reserved``) before it was sent; None for a
    #: request refused before its reservation.
    row_id: int | None = None
    #: The model that answered (the answer's ``model``; ``None`` until known), and what
    #: the usage would have cost on :attr:`model` when another answered.
    answered_model: str | None = None
    asked_cost_usd: float | None = None

    def waited(self, since: float) -> None:
        self.queued_s += time.monotonic() - since

    def end(self, status: int, *, usage: dict[str, Any] | None = None,
            local: bool = False, complete: bool = True) -> None:
        """``complete`` False: the upstream may have billed more than the usage seen (a
        stream cut short, a client that left, an answer that never came): the request
        is charged its worst case, the only sure bound (the API has no per-request
        usage lookup)."""
        self.status = status
        self.duration_s = time.monotonic() - self.arrived
        if usage:
            self.usage = usage
        answer = {"model": self.answered_model} if self.answered_model else None
        priced = price_answer(self.model, answer, Usage.from_api(self.usage), free=local)
        self.cost_usd, self.asked_cost_usd = priced.cost_usd, priced.asked_cost_usd
        if self.usage:
            self.answered_model = priced.answered
        if not complete and self.cost_usd is not None:
            self.cost_usd = max(self.cost_usd, self.worst_usd)

    @property
    def tokens(self) -> Usage:
        return Usage.from_api(self.usage)
