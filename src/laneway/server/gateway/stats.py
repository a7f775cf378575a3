"""The gateway's traffic, live and in memory: what the Traffic page and ``GET
/v1/laneway/traffic`` show (the ledger keeps every request for good; this is the view
of the last minutes, cheap enough to read every second).

:class:`LiveStats` observes each finished request (:class:`.Exchange`) and keeps

- per client key, model and lane: requests, errors, tokens, cost, time queued, time to
  first token (mean, and p50/p95 over a small uniform sample), upstream errors absorbed;
- a timeline of :data:`BUCKET_S`-second buckets over the last :data:`WINDOW_S` seconds:
  requests per lane, errors, tokens, and the highest rate-limit use the governor showed
  during the bucket (sampled by :meth:`LiveStats.sample_every` and on every request);

and reads the governor's queue (requests waiting and in flight per lane) and buckets
live, when asked.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from laneway.governor.buckets import Lane
from laneway.governor.core import Governor
from laneway.server.gateway.exchange import CLIENT_CLOSED, Exchange

#: Width of one timeline bucket, and how far back the timeline reaches.
BUCKET_S = 5.0
WINDOW_S = 900.0
#: Times to first token kept per row for the percentiles (a uniform sample).
SAMPLE_SIZE = 256
#: The governor's buckets, as the timeline and the limits name them.
LIMIT_KINDS = ("requests", "input", "output")


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of ``values``; None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass(slots=True)
class Row:
    """The requests of one client key, on one model, in one lane."""

    key: str
    model: str
    lane: str
    requests: int = 0
    errors: int = 0
    client_closed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cost_usd: float = 0.0
    priced: int = 0
    unpriced: int = 0
    queued_s_total: float = 0.0
    queued_s_max: float = 0.0
    ttft_count: int = 0
    ttft_total: float = 0.0
    ttft_sample: list[float] = field(default_factory=list)
    upstream_errors: int = 0
    #: The models that answered, and what the asked model would have cost where
    #: another one answered.
    answered: set[str] = field(default_factory=set)
    asked_cost_usd: float = 0.0

    def add(self, ex: Exchange, rng: random.Random) -> None:
        self.requests += 1
        self.errors += ex.status >= 400
        self.client_closed += ex.status == CLIENT_CLOSED
        used = ex.tokens
        self.input_tokens += used.input_tokens
        self.output_tokens += used.output_tokens
        self.cache_creation_input_tokens += used.cache_creation_input_tokens
        self.cache_read_input_tokens += used.cache_read_input_tokens
        if ex.cost_usd is None:
            self.unpriced += 1
        else:
            self.priced += 1
            self.cost_usd += ex.cost_usd
        self.queued_s_total += ex.queued_s
        self.queued_s_max = max(self.queued_s_max, ex.queued_s)
        self.upstream_errors += ex.upstream_errors
        if ex.answered_model:
            self.answered.add(ex.answered_model)
        self.asked_cost_usd += ex.asked_cost_usd or 0.0
        if ex.ttft_s is not None:
            self.ttft_count += 1
            self.ttft_total += ex.ttft_s
            if len(self.ttft_sample) < SAMPLE_SIZE:  # reservoir sampling (algorithm R)
                self.ttft_sample.append(ex.ttft_s)
            else:
                slot = rng.randrange(self.ttft_count)
                if slot < SAMPLE_SIZE:
                    self.ttft_sample[slot] = ex.ttft_s

    def view(self) -> dict[str, Any]:
        mean = self.ttft_total / self.ttft_count if self.ttft_count else None
        return {
            "key": self.key, "model": self.model, "lane": self.lane,
            "requests": self.requests, "errors": self.errors,
            "client_closed": self.client_closed,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cost_usd": round(self.cost_usd, 8) if self.priced else None,
            "unpriced": self.unpriced,
            "queued_s_total": round(self.queued_s_total, 6),
            "queued_s_max": round(self.queued_s_max, 6),
            "ttft_s_mean": _round(mean), "ttft_s_p50": _round(percentile(self.ttft_sample, 0.5)),
            "ttft_s_p95": _round(percentile(self.ttft_sample, 0.95)),
            "upstream_errors": self.upstream_errors,
            "answered_by": sorted(self.answered),
            "asked_cost_usd": round(self.asked_cost_usd, 8) if self.asked_cost_usd else None,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass(slots=True)
class Slot:
    """One timeline bucket: what finished in it, and the peak rate-limit use seen."""

    index: int
    requests: dict[str, int] = field(default_factory=lambda: {lane.value: 0 for lane in Lane})
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    limit_use: dict[str, float | None] = field(
        default_factory=lambda: dict.fromkeys(LIMIT_KINDS))

    def view(self) -> dict[str, Any]:
        return {"t": self.index * BUCKET_S, "requests": dict(self.requests),
                "errors": self.errors, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "limit_use": dict(self.limit_use)}


def lane_queue(governor: Governor) -> dict[str, dict[str, int]]:
    """Requests waiting for the governor and in flight, per lane, over every model (the
    runs ``laneway serve`` executes share them with the gateway)."""
    out = {lane.value: {"waiting": 0, "in_flight": 0} for lane in Lane}
    for st in governor.models.values():
        for lane in Lane:
            out[lane.value]["waiting"] += len(st.waiting[lane])
            out[lane.value]["in_flight"] += max(0, st.in_flight[lane])
    return out


def governor_limits(governor: Governor) -> dict[str, dict[str, Any]]:
    """Per model: each known bucket's limit per minute, this process's share of it, its
    level, and use (1 - level / what the share holds: 0 when full, 1 when empty and
    requests wait for it), the background lane's pause and its concurrency limit."""
    out: dict[str, dict[str, Any]] = {}
    for model, st in governor.snapshot().items():
        buckets = {}
        for kind, b in st["buckets"].items():
            limit, share = float(b["limit"]), float(b.get("share", 1.0))
            held = limit * share
            use = min(1.0, max(0.0, 1.0 - float(b["level"]) / held)) if held else 0.0
            buckets[kind] = {"limit": int(limit), "share": share, "level": b["level"],
                             "use": round(use, 4)}
        out[model] = {"buckets": buckets, "paused_s": st["paused_s"],
                      "concurrency": st["concurrency"]}
    return out


def peak_use(limits: dict[str, dict[str, Any]]) -> dict[str, float]:
    """The most used bucket of each kind, over the models."""
    out: dict[str, float] = {}
    for model in limits.values():
        for kind, bucket in model["buckets"].items():
            out[kind] = max(out.get(kind, 0.0), float(bucket["use"]))
    return out


class LiveStats:
    """See the module docstring. Every method runs on the server's event loop."""

    def __init__(self, governor: Callable[[], Governor], *,
                 clock: Callable[[], float] = time.time) -> None:
        self._governor = governor
        self.clock = clock
        self.started_at = clock()
        self.rows: dict[tuple[str, str, str], Row] = {}
        self._slots: list[Slot | None] = [None] * int(WINDOW_S / BUCKET_S)
        self._rng = random.Random(0)
        #: Which process this is, and how many share the account (``laneway serve
        #: --workers``, or hosts on one ledger): every figure here is this process's.
        self.process = ""
        self.processes: Callable[[], int] = lambda: 1

    def observe(self, ex: Exchange) -> None:
        """A gateway observer: count one finished request."""
        lane = ex.lane.value
        row = self.rows.get((ex.key_name, ex.model, lane))
        if row is None:
            row = self.rows[(ex.key_name, ex.model, lane)] = Row(ex.key_name, ex.model, lane)
        row.add(ex, self._rng)
        slot = self._slot(self.clock())
        slot.requests[lane] += 1
        slot.errors += ex.status >= 400
        slot.input_tokens += ex.tokens.input_tokens
        slot.output_tokens += ex.tokens.output_tokens
        self.sample()

    def _slot(self, now: float) -> Slot:
        index = int(now // BUCKET_S)
        at = index % len(self._slots)
        slot = self._slots[at]
        if slot is None or slot.index != index:
            slot = self._slots[at] = Slot(index)
        return slot

    def sample(self) -> dict[str, dict[str, Any]]:
        """Note the governor's rate-limit use in the current bucket (its peak is kept);
        returns the governor's limits."""
        limits = governor_limits(self._governor())
        slot = self._slot(self.clock())
        for kind, use in peak_use(limits).items():
            seen = slot.limit_use.get(kind)
            slot.limit_use[kind] = use if seen is None else max(seen, use)
        return limits

    async def sample_every(self, interval_s: float = 1.0) -> None:
        """Sample the governor until cancelled (the app's lifespan runs it), so the
        timeline shows the limits' use between requests too."""
        while True:
            self.sample()
            await asyncio.sleep(interval_s)

    def timeline(self) -> list[dict[str, Any]]:
        """Every bucket of the window since this server started, oldest first (empty
        ones included, so the time axis is regular)."""
        now_index = int(self.clock() // BUCKET_S)
        first = max(int(self.started_at // BUCKET_S), now_index - len(self._slots) + 1)
        out = []
        for index in range(first, now_index + 1):
            slot = self._slots[index % len(self._slots)]
            out.append((slot if slot is not None and slot.index == index
                        else Slot(index)).view())
        return out

    def report(self) -> dict[str, Any]:
        """The body of ``GET /v1/laneway/traffic`` (see ``TrafficReport``)."""
        limits = self.sample()
        return {
            "at": self.clock(), "bucket_s": BUCKET_S, "window_s": WINDOW_S,
            "keys": [self.rows[k].view() for k in sorted(self.rows)],
            "timeline": self.timeline(),
            "queue": lane_queue(self._governor()),
            "limits": limits,
            "process": self.process,
            "processes": self.processes(),
        }
