"""Several processes on one account: each governor holds a share of every limit.

The account's limits (given, or learnt from the ``anthropic-ratelimit-*`` headers every
process sees alike) are the account's; when several processes send on it (``laneway
serve --workers N``, or several hosts on one PostgreSQL ledger) each one's buckets hold
and refill only its **share** of each limit (:meth:`TokenBucket.set_share`), so together
they never hold more than the limit.

About once a second each process publishes what it **wants** of each limit (per model:
requests, input and output tokens per minute) on a :class:`Board` (the ledger's
``rate_shares`` table) and reads what the other live processes want; then
:func:`split` gives it its share:

- every process that uses a model keeps a small floor (``reserve`` of the limit split
  evenly among them), so an idle one can start at once, without waiting for a beat;
- the rest goes in proportion to what each wants, so the shares sum to 1 and what an
  idle process does not use flows to the busy ones at the next beat;
- a model this process has not used yet starts at the floor when others are live (a
  process alone on the account holds the whole limit).

What a process wants (:func:`wants`) is what it admitted over the last beat plus what
waits for the governor, as if to be sent within ``backlog_s``. A larger share only
refills faster (levels never jump), so two processes whose shares change a beat apart
never hold more than the limit between them.

This module knows nothing of the ledger: the :class:`Board` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from laneway.governor import Governor

KINDS = ("requests", "input", "output")
#: The model name of the row every process keeps, busy or not: who is live.
PRESENCE = ""
#: What each process publishes per model: requests, input and output tokens per minute.
Wanted = tuple[float, float, float]


class Peer(Protocol):
    """One live process's row: what it wants of one model's limits, per minute."""

    @property
    def process(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def requests(self) -> float: ...
    @property
    def input(self) -> float: ...
    @property
    def output(self) -> float: ...


class Board(Protocol):
    """Where processes meet (the ledger's ``rate_shares`` table)."""

    async def exchange(self, wanted: Mapping[str, Wanted]) -> Sequence[Peer]:
        """Publish this process's wants (by model) and return every live process's
        rows, this one's included."""

    async def leave(self) -> None:
        """Take this process's rows away (its share goes to the others at once)."""


def want_of(peer: Peer, kind: str) -> float:
    return max(0.0, float(getattr(peer, kind)))


def floor_of(processes: int, reserve: float) -> float:
    """Each process's floor when ``processes`` share a limit."""
    return reserve / max(2, processes) if processes > 1 else 1.0


def split(me: str, peers: Sequence[Peer], mine: Mapping[str, Wanted], *,
          reserve: float) -> dict[str, dict[str, float]]:
    """This process's share of each of its models' limits (see the module docstring).

    ``peers`` are the live rows (this process's own are replaced by ``mine``)."""
    out: dict[str, dict[str, float]] = {}
    for model, wanted in mine.items():
        others = [p for p in peers if p.model == model and p.process != me]
        n = len(others) + 1
        floor = floor_of(n, reserve)
        shares = {}
        for i, kind in enumerate(KINDS):
            own = max(0.0, wanted[i])
            total = own + sum(want_of(p, kind) for p in others)
            rest = 1.0 - n * floor
            shares[kind] = floor + rest * own / total if total > 0 else 1.0 / n
        out[model] = shares
    return out


@dataclass
class _Seen:
    """What the governor had admitted for one model at the last beat."""

    at: float
    admitted: dict[str, float]


def wants(governor: Governor, seen: dict[str, _Seen], *, backlog_s: float
          ) -> dict[str, Wanted]:
    """Per model: what was admitted since the last call (per minute) plus what waits
    (as if to be sent within ``backlog_s``). Updates ``seen``."""
    now = governor.clock()
    out: dict[str, Wanted] = {}
    for model, st in governor.models.items():
        waiting = [w.permit for lane in st.waiting.values() for w in lane
                   if not w.future.done()]
        backlog = (float(len(waiting)), sum(p.input_tokens for p in waiting),
                   sum(p.output_tokens for p in waiting))
        before = seen.get(model)
        elapsed = now - before.at if before is not None else 0.0
        row = []
        for i, kind in enumerate(KINDS):
            used = st.admitted[kind] - before.admitted[kind] if before is not None else 0.0
            rate = used * 60.0 / elapsed if elapsed > 0 else 0.0
            row.append(rate + backlog[i] * 60.0 / backlog_s)
        out[model] = (row[0], row[1], row[2])
        seen[model] = _Seen(now, dict(st.admitted))
    return out


@dataclass
class ShareSync:
    """Keeps ``governor``'s shares in step with the other processes on ``board``:
    :meth:`beat` once (before serving), then :meth:`run` until cancelled, then
    :meth:`leave`."""

    governor: Governor
    board: Board
    process: str
    interval_s: float = 1.0
    #: The part of each limit kept as floors (split evenly among the processes).
    reserve: float = 0.04
    backlog_s: float = 10.0
    on_notice: Callable[[str], None] = field(default=lambda _msg: None)
    #: Live processes on the account at the last beat (this one included).
    processes: int = 1
    beats: int = 0
    failures: int = 0
    _seen: dict[str, _Seen] = field(default_factory=dict)

    async def beat(self) -> dict[str, dict[str, float]]:
        """Publish, read, and set the governor's shares; returns them by model."""
        mine = wants(self.governor, self._seen, backlog_s=self.backlog_s)
        peers = await self.board.exchange({PRESENCE: (0.0, 0.0, 0.0), **mine})
        self.processes = len({p.process for p in peers} | {self.process})
        self.governor.default_share = floor_of(self.processes, self.reserve)
        shares = split(self.process, peers, mine, reserve=self.reserve)
        for model, by_kind in shares.items():
            for kind, share in by_kind.items():
                self.governor.set_share(model, kind, share)
        self.beats += 1
        return shares

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except Exception as exc:  # the ledger is away: keep the shares held now
                self.failures += 1
                self.on_notice(f"could not share the rate limits: {exc}")

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.board.leave()
