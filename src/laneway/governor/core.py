"""One set of rate limits shared by interactive and background work.

Per model (the API's limits are per model class) the governor keeps:

- **buckets** for requests, input tokens and output tokens per minute, continuously
  refilled, with limits given (``RateLimits``) or learnt from the
  ``anthropic-ratelimit-*-limit`` headers. Input tokens are estimated before sending
  and corrected by the usage that comes back; output tokens are reserved from a moving
  average of what requests really produce (never more than ``max_tokens``) and the
  difference is settled at the end. A request larger than a whole bucket waits for a
  full bucket and then goes: it is never stuck forever.
- **adaptive concurrency** for background work (:class:`AIMD`): slow start, then
  additive increase while responses are clean and the limit is what holds work back;
  multiplicative decrease on 429/529, at most once per cooldown. Before that, a **cold
  start of one**: no limit given or known, one request at a time until the upstream
  answers (its headers say the limits; from a drained account 8 at once are refused).
- **lanes**: interactive requests are admitted before any waiting background work and
  may use the whole bucket; background work leaves the room recent interactive demand
  needs (:mod:`laneway.governor.demand`: none when nobody chats), so a person's request
  finds it at once. On a 429 the whole background
  lane pauses until ``retry-after``; the interactive lane is not paused.

All state is observable through :meth:`Governor.snapshot` and ``history``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from laneway.errors import ProviderError
from laneway.governor.buckets import AIMD, Lane, RateLimits, TokenBucket, said_limits
from laneway.governor.demand import InteractiveDemand
from laneway.governor.state import ModelState, Permit, Waiter
from laneway.wire.status import type_outcome


class Governor:
    def __init__(
        self, *, limits: RateLimits | Mapping[str, RateLimits] | None = None,
        clock: Callable[[], float] = time.monotonic,
        demand: Callable[[], InteractiveDemand] = InteractiveDemand,
        initial_concurrency: int = 8, max_concurrency: int = 512, margin: float = 0.99,
        learn_limits: bool = True, history_size: int = 2000, speed: float = 1.0,
    ) -> None:
        self.clock = clock
        #: How many clock seconds pass per real second (tests run a sped-up clock).
        self.speed = speed
        #: Makes each model's record of interactive demand (how the reserve is sized).
        self.demand = demand
        self.initial_concurrency = initial_concurrency
        self.max_concurrency = max_concurrency
        self.margin = margin
        self.learn_limits = learn_limits
        self._limits = limits
        self.models: dict[str, ModelState] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=history_size)
        self.started_at = clock()
        self._timer: asyncio.TimerHandle | None = None
        self._fixed: int | None = None
        #: Called with (model, until_wall_time, reason) when a 429 pauses a lane, so
        #: several workers can share the pause (see the store's pauses table).
        self.on_pause: Callable[[str, float, str], None] | None = None
        #: This process's part of a limit not shared out yet (see :mod:`laneway.governor.share`).
        self.default_share = 1.0

    # -- state ---------------------------------------------------------------------------
    def fix_concurrency(self, limit: int) -> None:
        """Hold background concurrency at ``limit`` (``--concurrency N``): no adapting."""
        self.initial_concurrency = self.max_concurrency = limit
        for st in self.models.values():
            st.aimd = AIMD(initial=limit, minimum=limit, maximum=limit)
        self._fixed = limit

    def state(self, model: str) -> ModelState:
        st = self.models.get(model)
        if st is None:
            fixed = self._fixed
            aimd = AIMD(initial=fixed, minimum=fixed, maximum=fixed) if fixed else \
                AIMD(initial=self.initial_concurrency, maximum=self.max_concurrency)
            st = ModelState(model, aimd=aimd, demand=self.demand())
            given = self._given(model)
            now = self.clock()
            if given is not None:
                for kind in ("requests", "input", "output"):
                    limit = given.of(kind)
                    if limit:
                        st.buckets[kind] = TokenBucket(limit, now=now, margin=self.margin,
                                                       share=self.share_of(st, kind))
            self.models[model] = st
        return st

    def share_of(self, st: ModelState, kind: str) -> float:
        return st.shares.get(kind, self.default_share)

    def _given(self, model: str) -> RateLimits | None:
        if self._limits is None or isinstance(self._limits, RateLimits):
            return self._limits
        return self._limits.get(model) or self._limits.get("*")

    def _note(self, model: str, kind: str, **data: Any) -> None:
        self.history.append({"t": round(self.clock() - self.started_at, 3), "model": model,
                             "kind": kind, **data})

    # -- estimates -----------------------------------------------------------------------
    def expected_output(self, st: ModelState, max_tokens: int) -> float:
        guess = st.output_avg if st.output_avg is not None else min(max_tokens, 256)
        return float(min(max_tokens, max(1.0, guess * 1.1)))

    def _permit(self, st: ModelState, lane: Lane, input_tokens: int, max_tokens: int) -> Permit:
        return Permit(lane, st.model, input_tokens * st.input_ratio,
                      self.expected_output(st, max_tokens), max_tokens,
                      estimated_input=float(input_tokens))

    # -- admission -----------------------------------------------------------------------
    async def acquire(self, lane: Lane, model: str, *, input_tokens: int, max_tokens: int
                      ) -> Permit:
        """Wait until a request of this size may be sent in ``lane``; returns its permit."""
        st = self.state(model)
        permit = self._permit(st, lane, input_tokens, max_tokens)
        fut: asyncio.Future[Permit] = asyncio.get_running_loop().create_future()
        waiter = Waiter(permit, fut)
        st.waiting[lane].append(waiter)
        self.pump()
        try:
            return await fut
        except asyncio.CancelledError:
            if waiter in st.waiting[lane]:
                st.waiting[lane].remove(waiter)
            elif fut.done() and not fut.cancelled():
                self.release(fut.result(), outcome="canceled")
            raise

    def try_acquire(self, lane: Lane, model: str, *, input_tokens: int, max_tokens: int
                    ) -> Permit | None:
        """Admit at once if nobody waits ahead and nothing holds the request back; else
        ``None`` (then call :meth:`acquire`). Saves a task and a loop turn per request."""
        st = self.state(model)
        if st.waiting[Lane.INTERACTIVE] or st.waiting[lane]:
            return None
        permit = self._permit(st, lane, input_tokens, max_tokens)
        now = self.clock()
        if self._blocked_s(st, permit, now) != 0:
            return None
        self._admit(st, permit, now)
        return permit

    def _blocked_s(self, st: ModelState, permit: Permit, now: float) -> float | None:
        """0 if ``permit`` may go now; else seconds to wait (None: wait for a release)."""
        background = permit.lane is Lane.BACKGROUND
        if background:
            if now < st.paused_until:
                return st.paused_until - now
            if st.in_flight[Lane.BACKGROUND] >= st.aimd.value:
                return None
            if self.learn_limits and not (st.answered or st.buckets) \
                    and any(st.in_flight.values()):
                return None  # the cold start: one at a time until the first answer
        wait = 0.0
        for kind, amount in (("requests", 1.0), ("input", permit.input_tokens),
                             ("output", permit.output_tokens)):
            bucket = st.buckets.get(kind)
            if bucket is None:
                continue
            floor = min(st.demand.reserve(kind, now, bucket.capacity), bucket.capacity / 2) \
                if background else 0.0
            wait = max(wait, bucket.wait_s(amount, floor, now))
        return wait

    def pump(self) -> None:
        """Admit every waiter that may go now, interactive first; arm a timer for the rest."""
        now = self.clock()
        next_s: float | None = None
        for st in self.models.values():
            for lane in (Lane.INTERACTIVE, Lane.BACKGROUND):
                queue = st.waiting[lane]
                while queue:
                    waiter = queue[0]
                    if waiter.future.done():
                        queue.popleft()
                        continue
                    blocked = self._blocked_s(st, waiter.permit, now)
                    if blocked is None:
                        break
                    if blocked > 0:
                        next_s = blocked if next_s is None else min(next_s, blocked)
                        break
                    queue.popleft()
                    self._admit(st, waiter.permit, now)
                    waiter.future.set_result(waiter.permit)
                if lane is Lane.INTERACTIVE and queue:
                    break  # background waits while a person's request is waiting
        self._arm(next_s)

    def _arm(self, delay_s: float | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if delay_s is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._timer = loop.call_later(max(0.001, delay_s / self.speed), self.pump)

    def _admit(self, st: ModelState, permit: Permit, now: float) -> None:
        for kind, amount in (("requests", 1.0), ("input", permit.input_tokens),
                             ("output", permit.output_tokens)):
            st.admitted[kind] += amount
            bucket = st.buckets.get(kind)
            if bucket is not None:
                bucket.take(amount, now)
        st.in_flight[permit.lane] += 1
        permit.admitted_at = now
        if permit.lane is Lane.INTERACTIVE:
            people = st.in_flight[Lane.INTERACTIVE] + len(st.waiting[Lane.INTERACTIVE])
            st.demand.note(now, input_tokens=permit.input_tokens,
                           output_tokens=permit.output_tokens, people=people)

    # -- completion ----------------------------------------------------------------------
    def release(
        self, permit: Permit, *, outcome: str, usage: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None, retry_after_s: float | None = None,
    ) -> None:
        """Give a permit back. ``outcome``: ok, rate_limited, overloaded, error, canceled
        (a request that failed with a :class:`ProviderError`: :meth:`release_error`)."""
        if permit.released:
            return
        permit.released = True
        st = self.state(permit.model)
        now = self.clock()
        saturated = st.in_flight[Lane.BACKGROUND] >= st.aimd.value
        if not permit.set_aside:
            st.in_flight[permit.lane] -= 1
        if outcome == "ok" and usage is not None:
            self._settle(st, permit, usage, now)
            if permit.lane is Lane.BACKGROUND and st.aimd.on_success(saturated=saturated):
                self._note(st.model, "concurrency", limit=st.aimd.value, reason="clean")
        else:
            self._refund(st, permit, now, sent=outcome not in ("rate_limited", "canceled"))
        st.answered = st.answered or outcome != "canceled"
        if headers:  # after the refund: a 429's count of what is left has the last word
            self._learn(st, headers, now, synced=outcome == "rate_limited")
        if outcome in ("rate_limited", "overloaded"):
            st.sent["429"] += outcome == "rate_limited"
            if st.aimd.on_overload(now):
                self._note(st.model, "concurrency", limit=st.aimd.value, reason=outcome)
        if outcome == "rate_limited":
            pause_s = retry_after_s if retry_after_s is not None else 5.0
            self.pause(st.model, pause_s, reason="429")
        self.pump()

    @contextlib.contextmanager
    def given_back_on_failure(self, permit: Permit) -> Iterator[None]:
        """Around sending a permitted request: if it fails, the permit is given back (with
        :meth:`release_error` for a :class:`ProviderError`, as ``canceled`` for anything
        else, cancellation included). On success the caller releases it with the usage."""
        try:
            yield
        except ProviderError as err:
            self.release_error(permit, err)
            raise
        except BaseException:
            self.release(permit, outcome="canceled")
            raise

    def release_error(self, permit: Permit, err: ProviderError) -> None:
        """Give back the permit of a request that failed with ``err``: a 429 pauses the
        background lane for its ``retry-after`` and its headers correct the buckets, a 529
        lowers the concurrency, and anything else gives back what was reserved."""
        self.release(permit, outcome=outcome_of(err), headers=err.ratelimit_headers,
                     retry_after_s=err.retry_after_s)

    def heard(self, permit: Permit, headers: Mapping[str, str]) -> None:
        """The upstream began to answer ``permit``'s request (a stream, before its end):
        learn the limits its headers say, and end the model's cold start."""
        st = self.state(permit.model)
        st.answered = True
        self._learn(st, headers, self.clock(), synced=False,
                    besides=0 if permit.released or permit.set_aside else 1)
        self.pump()

    def set_aside(self, permit: Permit) -> None:
        """Stop counting a request against the concurrency limit: one far past the usual
        latency is stalled, and 1% of stalled requests would otherwise take most of the
        slots (its tokens stay reserved until :meth:`release`)."""
        if permit.released or permit.set_aside:
            return
        permit.set_aside = True
        self.state(permit.model).in_flight[permit.lane] -= 1
        self.pump()

    def pause(self, model: str, seconds: float, *, reason: str = "429",
              publish: bool = True) -> None:
        """Pause the background lane of ``model`` for ``seconds`` (never shortens a pause)."""
        st = self.state(model)
        until = self.clock() + seconds
        if until > st.paused_until:
            st.paused_until = until
            self._note(model, "pause", seconds=round(seconds, 3), reason=reason)
            if publish and self.on_pause is not None:
                self.on_pause(model, time.time() + seconds, reason)
        self.pump()

    def _settle(self, st: ModelState, permit: Permit, usage: Mapping[str, Any],
                now: float) -> None:
        actual_in = float(usage.get("input_tokens") or 0)
        actual_out = float(usage.get("output_tokens") or 0)
        st.sent["requests"] += 1
        st.sent["input"] += actual_in
        st.sent["output"] += actual_out
        if permit.estimated_input > 0 and actual_in > 0:
            seen = actual_in / permit.estimated_input
            ratio = 0.9 * st.input_ratio + 0.1 * seen
            st.input_ratio = min(4.0, max(0.25, ratio))
        st.output_avg = actual_out if st.output_avg is None else \
            0.9 * st.output_avg + 0.1 * actual_out
        for kind, reserved, actual in (("input", permit.input_tokens, actual_in),
                                       ("output", permit.output_tokens, actual_out)):
            bucket = st.buckets.get(kind)
            if bucket is None:
                continue
            if actual > reserved:
                bucket.take(actual - reserved, now)
            else:
                bucket.give(reserved - actual, now)

    def _refund(self, st: ModelState, permit: Permit, now: float, *, sent: bool) -> None:
        """A request that produced nothing: give back its tokens (and its request slot,
        if the server never counted it)."""
        for kind, amount in (("requests", 0.0 if sent else 1.0),
                             ("input", 0.0 if sent else permit.input_tokens),
                             ("output", permit.output_tokens)):
            bucket = st.buckets.get(kind)
            if bucket is not None and amount:
                bucket.give(amount, now)

    def _learn(self, st: ModelState, headers: Mapping[str, str], now: float, *,
               synced: bool, besides: int = 0) -> None:
        for kind, (limit, remaining) in said_limits(headers).items():
            bucket = st.buckets.get(kind)
            if bucket is None and not self.learn_limits:
                continue
            if bucket is None:
                share = self.share_of(st, kind)
                level = remaining * share - st.unmetered(kind, besides=besides)
                st.buckets[kind] = TokenBucket(limit, now=now, level=level,
                                               margin=self.margin, share=share)
                self._note(st.model, "limit", bucket=kind, limit=limit, learnt=True)
                continue
            if self.learn_limits and limit != bucket.limit_per_min:
                bucket.set_limit(limit, now)
                self._note(st.model, "limit", bucket=kind, limit=limit, learnt=True)
            if synced:  # the server said no: trust its count over ours
                bucket.refill(now)
                bucket.level = min(bucket.level, remaining * bucket.share)

    # -- observation ---------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        now = self.clock()
        elapsed_min = max(1e-9, (now - self.started_at) / 60.0)
        out: dict[str, Any] = {}
        for model, st in self.models.items():
            buckets = {kind: b.report(st.sent[kind], elapsed_min, now)
                       for kind, b in st.buckets.items()}
            out[model] = {
                "buckets": buckets,
                "concurrency": st.aimd.value,
                "in_flight": {lane.value: n for lane, n in st.in_flight.items()},
                "waiting": {lane.value: len(q) for lane, q in st.waiting.items()},
                "paused_s": round(max(0.0, st.paused_until - now), 3),
                "interactive_reserve": st.demand.as_json(
                    now, {kind: b.capacity for kind, b in st.buckets.items()}),
                "sent": dict(st.sent),
            }
        return out

    def utilization(self, model: str, *, elapsed_s: float) -> dict[str, float]:
        """Share of each known limit used over ``elapsed_s`` seconds (1.0 = all of it)."""
        st = self.models.get(model)
        if st is None or elapsed_s <= 0:
            return {}
        minutes = elapsed_s / 60.0
        # What the limit allowed in that time: a full bucket at the start, then its refill.
        return {kind: st.sent[kind] / (b.limit_per_min * (1.0 + minutes))
                for kind, b in st.buckets.items()}


def outcome_of(err: ProviderError) -> str:
    """The :meth:`Governor.release` outcome of a request that failed with ``err``:
    ``rate_limited`` (429), ``overloaded`` (529, or that error event mid-stream), or
    ``error``."""
    return type_outcome(err.error_type or "api_error").governor
