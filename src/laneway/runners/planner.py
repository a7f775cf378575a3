"""``--mode auto``: choose realtime, native or hybrid from size, limits, deadline and budget.

Each mode is estimated before anything is sent:

- **realtime**: time from the rate limits (requests, input and output tokens per
  minute; those given, else the API's first published tier, 50 / 30k / 8k, as a
  conservative assumption) and from latency (``first_token_s`` plus the expected output
  at ``output_tokens_per_s``, over the concurrency); cost at the standard price.
- **native**: half the cost; time is how long batches typically take (1 h, the API's
  "most batches end within an hour", unless the ledger has seen this provider's
  batches end, in which case the median of the recent ones).

Tokens are estimated per job: input from the text (:func:`laneway.cost.tokens.input_tokens`),
output as an expected figure (``expected_output_tokens``, capped by ``max_tokens``)
and, for the worst case, ``max_tokens`` itself.

The choice: the embedded local API is free and immediate, so realtime. Otherwise the
cheapest mode that meets the deadline and fits the budget; native with a deadline is
**hybrid** (batches for the bulk, and whatever is unfinished when the deadline comes
near is canceled and sent realtime). Hybrid counts as meeting a deadline shorter than a
batch's typical time when realtime could still do everything after the batches have
had ``hybrid_min_window`` of that time. With no deadline, a run that realtime would
finish within a batch's typical time goes realtime unless native saves at least
``min_savings_usd``: waiting for a batch is not worth cents. The reasoning is one or
two lines, printed and kept in ``Summary.plan``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from laneway.cost import tokens
from laneway.cost.prices import BATCH_DISCOUNT, NO_PRICES, PriceTable, price_of
from laneway.errors import UnknownModelError
from laneway.governor.buckets import RateLimits
from laneway.timeparse import human_s

#: The API's first published tier (RPM / ITPM / OTPM): the assumption when none is known.
FIRST_TIER = RateLimits(rpm=50, itpm=30_000, otpm=8_000)


@dataclass(frozen=True, kw_only=True)
class PlannerOptions:
    #: Output tokens expected per answer when the run has no history (capped by max_tokens).
    expected_output_tokens: int = 400
    #: Latency model of one realtime request.
    first_token_s: float = 1.0
    output_tokens_per_s: float = 60.0
    #: Requests in flight realtime reaches when no ``--concurrency`` is given.
    concurrency: int = 64
    #: How long a batch typically takes (``None``: learnt, else 1 h), and at most.
    native_expected_s: float | None = None
    native_max_s: float = 24 * 3600.0
    #: No deadline: a batch is worth waiting for when it saves at least this much (or
    #: when realtime would take longer than a batch anyway).
    min_savings_usd: float = 1.0
    #: With a deadline batches cannot meet on their own: still try them (hybrid) when they
    #: get at least this share of their typical time before the fallback must start.
    hybrid_min_window: float = 0.25
    default_limits: RateLimits = FIRST_TIER
    #: Prices the run was given for models not in the table (``--price``).
    prices: PriceTable = NO_PRICES


@dataclass
class ModelLoad:
    jobs: int = 0
    input_tokens: int = 0
    max_output_tokens: int = 0
    expected_output_tokens: int = 0


@dataclass
class Workload:
    """What a set of jobs asks for, in estimated tokens, per model."""

    by_model: dict[str, ModelLoad] = field(default_factory=dict)

    def add(self, params: dict[str, Any], *, expected_output_tokens: int) -> None:
        load = self.by_model.setdefault(str(params.get("model", "")), ModelLoad())
        max_tokens = int(params.get("max_tokens", 0) or 0)
        load.jobs += 1
        load.input_tokens += tokens.input_tokens(params)
        load.max_output_tokens += max_tokens
        load.expected_output_tokens += min(max_tokens, expected_output_tokens)

    @classmethod
    def of(cls, params: Iterable[dict[str, Any]], *, expected_output_tokens: int) -> Workload:
        w = cls()
        for p in params:
            w.add(p, expected_output_tokens=expected_output_tokens)
        return w

    @property
    def jobs(self) -> int:
        return sum(m.jobs for m in self.by_model.values())

    @property
    def input_tokens(self) -> int:
        return sum(m.input_tokens for m in self.by_model.values())

    @property
    def max_output_tokens(self) -> int:
        return sum(m.max_output_tokens for m in self.by_model.values())

    @property
    def expected_output_tokens(self) -> int:
        return sum(m.expected_output_tokens for m in self.by_model.values())


@dataclass(frozen=True)
class Estimate:
    mode: str
    time_s: float
    cost_usd: float
    worst_usd: float
    unpriced: tuple[str, ...] = ()


@dataclass(frozen=True)
class Plan:
    mode: str  # realtime, native or hybrid
    reason: str
    realtime: Estimate
    native: Estimate


def _limits(given: RateLimits | None, options: PlannerOptions) -> tuple[RateLimits, bool]:
    if given is not None and (given.rpm or given.itpm or given.otpm):
        return given, False
    return options.default_limits, True


def limits_text(limits: RateLimits) -> str:
    parts = [f"{v:,} {k}" for k, v in (("RPM", limits.rpm), ("ITPM", limits.itpm),
                                       ("OTPM", limits.otpm)) if v]
    return " / ".join(parts) or "no known limits"


def realtime_estimate(w: Workload, *, limits: RateLimits | None, concurrency: int | None,
                      local: bool, options: PlannerOptions) -> Estimate:
    lim, _ = _limits(limits, options)
    rate_s = 0.0
    for load in w.by_model.values():  # the API's limits are per model
        for amount, per_min in ((load.jobs, lim.rpm), (load.input_tokens, lim.itpm),
                                (load.expected_output_tokens, lim.otpm)):
            if per_min:
                rate_s = max(rate_s, 60.0 * amount / per_min)
    per_job_out = w.expected_output_tokens / w.jobs if w.jobs else 0.0
    latency_s = options.first_token_s + per_job_out / max(options.output_tokens_per_s, 1e-9)
    lanes = max(1, concurrency or options.concurrency)
    time_s = (max(rate_s, w.jobs * latency_s / lanes) + latency_s) if w.jobs else 0.0
    cost, worst, unpriced = _costs(w, local=local, discount=1.0, prices=options.prices)
    return Estimate("realtime", time_s, cost, worst, unpriced)


def native_estimate(w: Workload, *, local: bool, options: PlannerOptions,
                    learnt_s: list[float] | None = None) -> Estimate:
    cost, worst, unpriced = _costs(w, local=local, discount=BATCH_DISCOUNT,
                                   prices=options.prices)
    return Estimate("native", native_expected_s(options, learnt_s) if w.jobs else 0.0,
                    cost, worst, unpriced)


def native_expected_s(options: PlannerOptions, learnt_s: list[float] | None = None) -> float:
    if options.native_expected_s is not None:
        return options.native_expected_s
    if learnt_s and len(learnt_s) >= 3:
        return float(statistics.median(learnt_s))
    return 3600.0


def _costs(w: Workload, *, local: bool, discount: float,
           prices: PriceTable) -> tuple[float, float, tuple[str, ...]]:
    if local:
        return 0.0, 0.0, ()
    cost = worst = 0.0
    unpriced: list[str] = []
    for model, load in w.by_model.items():
        try:
            p = price_of(model, prices)
        except UnknownModelError:
            unpriced.append(model)
            continue
        cost += (load.input_tokens * p.input + load.expected_output_tokens * p.output) / 1e6
        worst += (load.input_tokens * p.input + load.max_output_tokens * p.output) / 1e6
    return cost * discount, worst * discount, tuple(sorted(unpriced))


def realtime_s_for(w: Workload, *, limits: RateLimits | None, concurrency: int | None,
                   options: PlannerOptions) -> Callable[[int], float]:
    """``jobs -> seconds`` realtime needs for that many of ``w``'s (average) jobs."""

    def seconds(jobs: int) -> float:
        if w.jobs == 0 or jobs <= 0:
            return 0.0
        scaled = Workload({m: ModelLoad(
            jobs=max(1, round(load.jobs * jobs / w.jobs)),
            input_tokens=round(load.input_tokens * jobs / w.jobs),
            max_output_tokens=round(load.max_output_tokens * jobs / w.jobs),
            expected_output_tokens=round(load.expected_output_tokens * jobs / w.jobs),
        ) for m, load in w.by_model.items()})
        return realtime_estimate(scaled, limits=limits, concurrency=concurrency, local=False,
                                 options=options).time_s

    return seconds


def choose(
    w: Workload, *, local: bool, limits: RateLimits | None = None,
    concurrency: int | None = None, deadline_s: float | None = None,
    budget_left_usd: float | None = None, batches_in_flight: int = 0,
    options: PlannerOptions | None = None, learnt_s: list[float] | None = None,
) -> Plan:
    """The mode for ``w`` (see the module docstring). ``deadline_s`` is from now."""
    options = options or PlannerOptions()
    rt = realtime_estimate(w, limits=limits, concurrency=concurrency, local=local,
                           options=options)
    nat = native_estimate(w, local=local, options=options, learnt_s=learnt_s)
    batch_mode = "hybrid" if deadline_s is not None else "native"
    lim, assumed = _limits(limits, options)
    rt_note = (f"realtime ~{human_s(rt.time_s)} at {limits_text(lim)}"
               + (" (assumed: the first tier; pass --rpm/--itpm/--otpm)" if assumed else ""))
    costs = f"${nat.cost_usd:.4f} native vs ${rt.cost_usd:.4f} realtime"

    def plan(mode: str, reason: str) -> Plan:
        return Plan(mode, f"{mode}: {reason}", rt, nat)

    if local:
        return plan("realtime", "the local API is free and answers at once, so realtime")
    if batches_in_flight:
        return plan(batch_mode, f"re-attaching to {batches_in_flight} batch(es) in flight")
    if w.jobs == 0:
        return plan("realtime", "nothing to send")
    fallback = (f"; unfinished jobs go realtime ~{human_s(rt.time_s)} before the deadline"
                if deadline_s is not None else "")
    when = "" if deadline_s is None else f"the deadline in {human_s(deadline_s)}, "
    if deadline_s is None and rt.time_s <= nat.time_s and \
            rt.cost_usd - nat.cost_usd < options.min_savings_usd and \
            (budget_left_usd is None or rt.cost_usd <= budget_left_usd):
        return plan("realtime", f"no deadline, and a batch (typically ~{human_s(nat.time_s)}) "
                    f"would save only ${rt.cost_usd - nat.cost_usd:.4f}; {rt_note}")

    # With a deadline, batches need not finish in time to be worth it: the fallback
    # sends what is unfinished realtime. They are worth trying when realtime could still
    # finish everything after them, and they get a fair share of their typical time.
    window_s = None if deadline_s is None else deadline_s - rt.time_s
    partial = (deadline_s is not None and window_s is not None and nat.time_s > deadline_s
               and window_s >= options.hybrid_min_window * nat.time_s)

    return _by_deadline_and_budget(
        plan, rt, nat, deadline_s=deadline_s, budget_left_usd=budget_left_usd,
        partial=partial, window_s=window_s, batch_mode=batch_mode, when=when,
        fallback=fallback, rt_note=rt_note, costs=costs)


def _by_deadline_and_budget(
    plan: Callable[[str, str], Plan], rt: Estimate, nat: Estimate, *,
    deadline_s: float | None, budget_left_usd: float | None, partial: bool,
    window_s: float | None, batch_mode: str, when: str, fallback: str, rt_note: str,
    costs: str,
) -> Plan:
    """The part of :func:`choose` that weighs the deadline and the budget."""

    def meets(e: Estimate) -> bool:
        if deadline_s is None or e.time_s <= deadline_s:
            return True
        return e is nat and partial

    def affordable(e: Estimate) -> bool:
        return budget_left_usd is None or e.cost_usd <= budget_left_usd

    both = [nat, rt]  # cheapest first
    feasible = [e for e in both if meets(e) and affordable(e)]
    if feasible:
        best = feasible[0]
        if best is nat and partial:
            return plan(batch_mode, f"{when}batches at half price for what they finish in the "
                        f"~{human_s(window_s)} before the fallback (all of it typically takes "
                        f"~{human_s(nat.time_s)}; {costs}){fallback}")
        if best is nat:
            return plan(batch_mode, f"{when}batches at half price ({costs}), typically done in "
                        f"~{human_s(nat.time_s)}{fallback}")
        why = ("a batch (typically ~" + human_s(nat.time_s) + ") would miss it"
               if not meets(nat) else "a batch would pass the budget")
        return plan("realtime", f"{when}{why}; {rt_note} ({costs})")
    within = [e for e in both if affordable(e)]
    if within:
        best = min(within, key=lambda e: e.time_s)
        mode = "realtime" if best is rt else batch_mode
        limit = "cannot be met" if budget_left_usd is None else \
            "cannot be met within the budget"
        return plan(mode, f"{when}{limit} ({rt_note}; batches ~{human_s(nat.time_s)}; "
                    f"{costs}): the fastest{' affordable' if budget_left_usd else ''} mode")
    left = budget_left_usd or 0.0
    share = left / nat.cost_usd if nat.cost_usd else 1.0
    mode = batch_mode if meets(nat) else "realtime"
    return plan(mode, f"the budget (${left:.4f} left) covers about {min(share, 1.0):.0%} of "
                f"the expected cost at the batch price; work stops before it is exceeded "
                f"({costs})")
