"""Several processes on one account: each governor holds a share of every limit.

The account's limits (given, or learnt from the ``anthropic-ratelimit-*`` headers every
process sees alike) are the account's; when several processes send on it (``laneway
serve --workers N``, or several hosts on one PostgreSQL ledger) each one's buckets hold
and refill only its **share** of each limit (:meth:`TokenBucket.set_share`), so together
they never hold more than the limit.

About once a second each process publishes what it **wants** of each limit (per model:
requests, input and output tokens per minute) on a :class:`Board` (the ledger's
``rate_shares`` table) and reads what the other live processes want and hold; then
:func:`split` gives its target share:

- every process that uses a model keeps a small floor (``reserve`` of the limit split
  evenly among them), so an idle one can start at once, without waiting for a beat;
- the rest goes in proportion to what each wants, so the targets sum to 1 and what an
  idle process does not use flows to the busy ones at the next beats;
- a model this process has not used yet starts at the floor when others are live (a
  process alone on the account holds the whole limit).

It is **granted** (:func:`grants`) its target, but never more than the others leave:
the beats run one at a time (the board's lock), so the grants of the live processes
never sum to more than 1. A process whose target falls gives the difference back at its
beat, and the one whose target rose takes it at its next.

What a process wants (:func:`wants`) is what it admitted per minute (smoothed over the
beats) plus what waits for the governor, as if to be sent within ``backlog_s``. A larger
share only refills faster (levels never jump). A process whose beats fail keeps its
shares until the others would count it gone, then holds only the floor.

This module knows nothing of the ledger: the :class:`Board` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from laneway.governor.buckets import TokenBucket
from laneway.governor.core import Governor

KINDS = ("requests", "input", "output")
#: The model name of the row every process keeps, busy or not: who is live.
PRESENCE = ""
#: What each process publishes per model: requests, input and output tokens per minute.
Wanted = tuple[float, float, float]
#: The account's limits per minute as a process knows them (None: not known).
Limits = tuple[int | None, int | None, int | None]


#: The least share a process is granted: a bucket that holds nothing would never admit.
MIN_SHARE = 0.001


class Peer(Protocol):
    """One live process's row for one model."""

    @property
    def process(self) -> str: ...
    @property
    def model(self) -> str: ...
    @property
    def wanted(self) -> Wanted:
        """Requests, input and output tokens per minute."""
    @property
    def granted(self) -> Wanted:
        """The part of each limit it holds."""
    @property
    def limits(self) -> Limits:
        """The account's limits as it knows them."""


#: Given the live rows, this process's grants by model (run inside the board's beat).
Decide = Callable[[Sequence[Peer]], Mapping[str, Wanted]]


class Board(Protocol):
    """Where processes meet (the ledger's ``rate_shares`` table)."""

    async def exchange(self, wanted: Mapping[str, Wanted], limits: Mapping[str, Limits],
                       decide: Decide) -> Sequence[Peer]:
        """Publish this process's wants and known limits (by model), record what
        ``decide`` grants it from the live rows (one beat at a time: each sees the
        others' grants as they are), and return the live rows."""

    async def leave(self) -> None:
        """Take this process's rows away (its share goes to the others at once)."""


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
            total = own + sum(max(0.0, p.wanted[i]) for p in others)
            rest = 1.0 - n * floor
            shares[kind] = floor + rest * own / total if total > 0 else 1.0 / n
        out[model] = shares
    return out


def grants(me: str, peers: Sequence[Peer], mine: Mapping[str, Wanted], *,
           reserve: float) -> dict[str, Wanted]:
    """What this process may hold now: its :func:`split` share, but never more than the
    others leave (they give up what they hold beyond their share at their own beats,
    and this process takes it at its next)."""
    out: dict[str, Wanted] = {}
    for model, target in split(me, peers, mine, reserve=reserve).items():
        held = [p.granted for p in peers if p.model == model and p.process != me]
        g = [max(MIN_SHARE, min(target[kind], 1.0 - sum(h[i] for h in held)))
             for i, kind in enumerate(KINDS)]
        out[model] = (g[0], g[1], g[2])
    return out


@dataclass
class _Seen:
    """What the governor had admitted for one model at the last beat, and the use per
    minute measured so far (smoothed)."""

    at: float
    admitted: dict[str, float]
    use: tuple[float, float, float] = (0.0, 0.0, 0.0)


def wants(governor: Governor, seen: dict[str, _Seen], *, backlog_s: float,
          smoothing: float = 0.5) -> dict[str, Wanted]:
    """Per model: what was admitted per minute (over the beats, the last weighing
    ``1 - smoothing``) plus what waits (as if to be sent within ``backlog_s``).
    Updates ``seen``."""
    now = governor.clock()
    out: dict[str, Wanted] = {}
    for model, st in governor.models.items():
        waiting = [w.permit for lane in st.waiting.values() for w in lane
                   if not w.future.done()]
        backlog = (float(len(waiting)), sum(p.input_tokens for p in waiting),
                   sum(p.output_tokens for p in waiting))
        before = seen.get(model)
        elapsed = now - before.at if before is not None else 0.0
        use = []
        for i, kind in enumerate(KINDS):
            if before is None or elapsed <= 0:
                use.append(before.use[i] if before is not None else 0.0)
                continue
            rate = (st.admitted[kind] - before.admitted[kind]) * 60.0 / elapsed
            bucket = st.buckets.get(kind)
            if bucket is not None:  # a burst before the limit was known: no more than it
                rate = min(rate, float(bucket.limit_per_min))
            use.append(smoothing * before.use[i] + (1.0 - smoothing) * rate)
        out[model] = (use[0] + backlog[0] * 60.0 / backlog_s,
                      use[1] + backlog[1] * 60.0 / backlog_s,
                      use[2] + backlog[2] * 60.0 / backlog_s)
        seen[model] = _Seen(now, dict(st.admitted), (use[0], use[1], use[2]))
    return out


def hold_share(governor: Governor, model: str, kind: str, share: float) -> None:
    """Have ``governor`` hold ``share`` (0-1] of ``model``'s ``kind`` limit from now on
    (the limit itself stays the account's, given or learnt)."""
    st = governor.state(model)
    st.shares[kind] = share
    bucket = st.buckets.get(kind)
    if bucket is not None and bucket.share != share:
        bucket.set_share(share, governor.clock())
        governor.pump()


def known_limits(governor: Governor) -> dict[str, Limits]:
    """Per model, the limits the governor knows (given or learnt)."""
    out: dict[str, Limits] = {}
    for model, st in governor.models.items():
        got = [st.buckets[k].limit_per_min if k in st.buckets else None for k in KINDS]
        out[model] = (got[0], got[1], got[2])
    return out


def adopt_limits(governor: Governor, peers: Sequence[Peer]) -> None:
    """Start buckets from the limits other processes learnt, for those this governor
    does not know yet (its first requests are then held to its share, not sent
    unchecked until a response says the limit)."""
    if not governor.learn_limits:
        return
    now = governor.clock()
    for peer in peers:
        if peer.model == PRESENCE:
            continue
        for kind, limit in zip(KINDS, peer.limits, strict=True):
            st = governor.models.get(peer.model)
            if limit and (st is None or kind not in st.buckets):
                st = governor.state(peer.model)
                st.buckets[kind] = TokenBucket(limit, now=now, margin=governor.margin,
                                               share=governor.share_of(st, kind))


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
    #: What waits counts as wanted within this many seconds: short, so that among
    #: processes that all have work waiting the split follows their queues, not the
    #: (noisy) use their shares allowed.
    backlog_s: float = 1.0
    #: The board's live window: a process not beaten within it is gone.
    live_s: float = 5.0
    on_notice: Callable[[str], None] = field(default=lambda _msg: None)
    #: Live processes on the account at the last beat (this one included).
    processes: int = 1
    beats: int = 0
    failures: int = 0
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _last_ok: float = 0.0

    async def beat(self) -> dict[str, Wanted]:
        """Publish, read, and set the governor's shares; returns them by model."""
        mine = wants(self.governor, self._seen, backlog_s=self.backlog_s)
        granted: dict[str, Wanted] = {}

        def decide(peers: Sequence[Peer]) -> Mapping[str, Wanted]:
            granted.update(grants(self.process, peers, mine, reserve=self.reserve))
            return granted

        peers = await self.board.exchange({PRESENCE: (0.0, 0.0, 0.0), **mine},
                                          known_limits(self.governor), decide)
        self.processes = len({p.process for p in peers} | {self.process})
        self.governor.default_share = floor_of(self.processes, self.reserve)
        adopt_limits(self.governor, peers)
        for model, shares in granted.items():
            for kind, share in zip(KINDS, shares, strict=True):
                hold_share(self.governor, model, kind, share)
        self.beats += 1
        self._last_ok = self.governor.clock()
        return granted

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.beat()
            except Exception as exc:
                self.failures += 1
                self.on_notice(f"could not share the rate limits: {exc}")
                self._fall_back()

    def _fall_back(self) -> None:
        """Beats failing (the ledger away): keep the shares held, until the others would
        count this process gone and take them; then hold no more than the floor."""
        if self.governor.clock() - self._last_ok < self.live_s - self.interval_s:
            return
        floor = floor_of(max(2, self.processes), self.reserve)
        self.governor.default_share = min(self.governor.default_share, floor)
        for model, st in self.governor.models.items():
            for kind in KINDS:
                hold_share(self.governor, model, kind, min(floor, st.shares.get(kind, 1.0)))

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await self.board.leave()
