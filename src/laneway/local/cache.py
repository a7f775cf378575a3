"""Prompt caching, simulated: cache writes the first time a prefix is marked, reads when
the same prefix comes again within its lifetime.

A request's ``cache_control`` markers (on system blocks, on message content blocks, or
the top-level one on the last block) are its *breakpoints*: each ends a prefix of the
prompt. As the API describes it, the longest prefix still cached is read
(``cache_read_input_tokens``), the rest up to the last breakpoint is written
(``cache_creation_input_tokens``, split by lifetime into ``ephemeral_5m_input_tokens``
and ``ephemeral_1h_input_tokens``: each span between two breakpoints takes the lifetime
of the breakpoint that ends it), and only what follows the last breakpoint is plain
``input_tokens``. A read refreshes the entry's lifetime. Entries are per model.

:meth:`PromptCache.plan` works out a request's usage without changing the cache, so a
request the rate limiter refuses writes nothing; :meth:`PromptCache.commit` then stores
the plan's writes. Rate limits count ``input_tokens`` and cache writes, not cache reads.
No minimum cacheable length is simulated (the API's is 1,024 to 4,096 tokens by model).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from laneway.local.engines.base import Prompt

#: Lifetimes of ``cache_control.ttl``.
TTL_S = {"5m": 300.0, "1h": 3600.0}
#: Expired entries are dropped when the cache holds more than this many.
_PURGE_AT = 4096


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A ``cache_control`` marker: the prompt up to and including the marked block."""

    prefix: Prompt
    ttl: str = "5m"


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """A request's input tokens split as ``usage`` reports them."""

    input_tokens: int
    read: int = 0
    write_5m: int = 0
    write_1h: int = 0

    @property
    def written(self) -> int:
        return self.write_5m + self.write_1h

    @property
    def rate_limited_tokens(self) -> int:
        """What counts toward the input-tokens-per-minute limit (cache reads do not)."""
        return self.input_tokens + self.written


@dataclass(frozen=True, slots=True)
class CachePlan:
    usage: CacheUsage
    #: Entries to store or refresh: (model, prefix, ttl).
    entries: tuple[tuple[str, Prompt, str], ...] = field(default=())


class PromptCache:
    """The cached prefixes of one server, with their expiry times."""

    def __init__(self, *, time_scale: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        #: Shrinks the lifetimes (as ``batch_time_scale`` does the 24 h batch expiry).
        self.time_scale = time_scale
        self.clock = clock
        self._expires: dict[tuple[str, Prompt], float] = {}

    def _alive(self, key: tuple[str, Prompt], now: float) -> bool:
        expires = self._expires.get(key)
        if expires is None:
            return False
        if expires <= now:
            del self._expires[key]
            return False
        return True

    def plan(self, model: str, breakpoints: Sequence[Breakpoint], total_tokens: int,
             count: Callable[[Prompt], int]) -> CachePlan:
        """Split ``total_tokens`` into cache reads, writes and plain input."""
        if not breakpoints:
            return CachePlan(CacheUsage(input_tokens=total_tokens))
        now = self.clock()
        ends: list[int] = []  # tokens up to each breakpoint, never decreasing
        for bp in breakpoints:
            ends.append(min(total_tokens, max(count(bp.prefix), ends[-1] if ends else 0)))
        hit = -1
        for k in range(len(breakpoints) - 1, -1, -1):
            if self._alive((model, breakpoints[k].prefix), now):
                hit = k
                break
        read = ends[hit] if hit >= 0 else 0
        write = {"5m": 0, "1h": 0}
        start = read
        for k in range(hit + 1, len(breakpoints)):
            write[breakpoints[k].ttl] += ends[k] - start
            start = ends[k]
        usage = CacheUsage(input_tokens=total_tokens - ends[-1], read=read,
                           write_5m=write["5m"], write_1h=write["1h"])
        entries = tuple((model, bp.prefix, bp.ttl) for bp in breakpoints)
        return CachePlan(usage, entries)

    def commit(self, plan: CachePlan) -> None:
        """Store the plan's prefixes (a read one gets its lifetime again)."""
        now = self.clock()
        if len(self._expires) > _PURGE_AT:
            self._expires = {k: t for k, t in self._expires.items() if t > now}
        for model, prefix, ttl in plan.entries:
            key = (model, prefix)
            expires = now + TTL_S[ttl] * self.time_scale
            self._expires[key] = max(expires, self._expires.get(key, 0.0))
