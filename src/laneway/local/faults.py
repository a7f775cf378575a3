"""Fault simulation: a share of requests fails in a chosen way, deterministic under a seed.

``--faults 529=0.05,500=0.02,429=0.01,drop=0.01,midstream=0.02,stall=0.01`` gives the
fraction of requests that get each fault. Faults are drawn in arrival order from one
random generator seeded with ``--seed``, so a sequential client sees the same faults on
every run. A request can also ask for one fault with the header ``x-laneway-fault``
(``529``, ``500``, ``429``, ``429:90`` for a retry-after of 90 s, ``drop``,
``midstream``, ``stall``; ``403``, a key without permission, on request only), which
tests use to reach one error path on purpose; ``count_tokens`` answers that header's
``529``, ``500``, ``429`` and ``403`` too.

``pause`` ends the answer after two tokens with ``stop_reason: "pause_turn"``, as a
server-tool loop pauses a turn (a client resumes it). ``thread_not_found`` (a thread
``continue``) and ``thread_unsupported`` (any threaded request) answer the message-thread
rejections the local API never makes by itself otherwise; on a request without
``thread`` they do nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from laneway.errors import ConfigError

KINDS = ("529", "500", "429", "drop", "midstream", "stall", "pause", "thread_not_found",
         "thread_unsupported")
#: Faults a request can ask for with ``x-laneway-fault`` but a ``--faults`` plan cannot
#: draw (no client retries them: a share of them would only fail a run).
ON_REQUEST = ("403",)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    retry_after_s: int | None = None


class FaultPlan:
    def __init__(self, rates: dict[str, float], *, seed: int = 0,
                 retry_after_s: int = 5) -> None:
        total = sum(rates.values())
        if total > 1.0:
            raise ConfigError(f"--faults: the fractions add up to {total:g}, more than 1")
        self.rates = rates
        self.retry_after_s = retry_after_s
        self._rng = random.Random(seed)

    @classmethod
    def parse(cls, spec: str, *, seed: int = 0, retry_after_s: int = 5) -> FaultPlan:
        rates: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kind, sep, value = part.partition("=")
            kind = kind.strip()
            if not sep or kind not in KINDS:
                raise ConfigError(
                    f"--faults: {part!r} is not KIND=FRACTION with KIND one of {', '.join(KINDS)}"
                )
            try:
                rate = float(value)
            except ValueError:
                raise ConfigError(f"--faults: {value!r} in {part!r} is not a number") from None
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"--faults: {part!r}: the fraction must be between 0 and 1")
            rates[kind] = rate
        return cls(rates, seed=seed, retry_after_s=retry_after_s)

    def draw(self, forced: str | None = None) -> Fault | None:
        """The fault for the next request, if any (``forced`` is the request's header)."""
        if forced:
            kind, _, after = forced.partition(":")
            if kind not in KINDS + ON_REQUEST:
                return None
            return Fault(kind, int(after) if after.isdigit() else self.retry_after_s)
        if not self.rates:
            return None
        r = self._rng.random()
        acc = 0.0
        for kind, rate in self.rates.items():
            acc += rate
            if r < acc:
                return Fault(kind, self.retry_after_s)
        return None
