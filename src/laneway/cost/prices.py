"""What a request costs: the price table, cache-token prices and the batch discount.

Prices are USD per million tokens. A model is matched by its name or by a dated
snapshot or ``-latest`` alias of it (``claude-haiku-4-5-20251001`` is priced as
``claude-haiku-4-5``). The local model costs nothing. An unknown model raises
:class:`UnknownModelError`: it is never priced silently as zero. A price the user gives
(``--price IN/OUT``) for models not in the table is a :class:`PriceTable` carried by the
run it was given to (never stored process-wide: two runs of one ``laneway serve`` each
have their own), and passed to what prices that run's requests.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from laneway.errors import UnknownModelError

#: Native Message Batches bill input and output at half price (stacking with cache prices).
BATCH_DISCOUNT = 0.5


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


_OPUS = Price(5.0, 25.0, 6.25, 10.0, 0.50)
_SONNET_5 = Price(2.0, 10.0, 2.50, 4.0, 0.20)
_SONNET_4 = Price(3.0, 15.0, 3.75, 6.0, 0.30)
_HAIKU = Price(1.0, 5.0, 1.25, 2.0, 0.10)
# Older models, still served (official prices).
_OPUS_4 = Price(15.0, 75.0, 18.75, 30.0, 1.50)
_HAIKU_3_5 = Price(0.80, 4.0, 1.0, 1.6, 0.08)
_HAIKU_3 = Price(0.25, 1.25, 0.30, 0.50, 0.03)
FREE = Price(0.0, 0.0, 0.0, 0.0, 0.0)

PRICES: dict[str, Price] = {
    "claude-opus-4-5": _OPUS,
    "claude-opus-4-6": _OPUS,
    "claude-opus-4-7": _OPUS,
    "claude-opus-4-8": _OPUS,
    "claude-opus-5": _OPUS,
    "claude-sonnet-5": _SONNET_5,
    "claude-sonnet-4-5": _SONNET_4,
    "claude-sonnet-4-6": _SONNET_4,
    "claude-haiku-4-5": _HAIKU,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4-0": _OPUS_4,
    "claude-opus-4": _OPUS_4,  # claude-opus-4-20250514
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4": _SONNET_4,  # claude-sonnet-4-20250514
    "claude-3-7-sonnet": _SONNET_4,
    "claude-3-5-haiku": _HAIKU_3_5,
    "claude-3-haiku": _HAIKU_3,
}

#: Models served by laneway's own local API.
LOCAL_MODELS = frozenset({"smollm2-135m-instruct", "smollm2", "smollm2-135m", "local", "echo"})

_SNAPSHOT = re.compile(r"^(?P<base>.+?)(?:-\d{8}|-latest)$")


def given_price(input_usd: float, output_usd: float) -> Price:
    """A price from input and output USD per million tokens; cache prices follow the
    API's multipliers (5 min write 1.25x, 1 h write 2x, read 0.1x of input)."""
    return Price(input_usd, output_usd, input_usd * 1.25, input_usd * 2.0, input_usd * 0.1)


@dataclass(frozen=True)
class PriceTable:
    """Prices given for models not in :data:`PRICES` (a run's ``--price IN/OUT``),
    carried by that run: see the module docstring. Empty: the table's prices only."""

    given: Mapping[str, Price] = field(default_factory=dict)


#: No price given: :data:`PRICES` only.
NO_PRICES = PriceTable()


def is_local(model: str) -> bool:
    return model in LOCAL_MODELS


def price_of(model: str, prices: PriceTable = NO_PRICES) -> Price:
    """The price of ``model`` (``prices``: those a run was given for models not in the
    table); raises :class:`UnknownModelError` for an unknown one."""
    if model in PRICES:
        return PRICES[model]
    if is_local(model):
        return FREE
    m = _SNAPSHOT.match(model)
    if m and m.group("base") in PRICES:
        return PRICES[m.group("base")]
    if model in prices.given:
        return prices.given[model]
    raise UnknownModelError(model)


def known(model: str, prices: PriceTable = NO_PRICES) -> bool:
    try:
        price_of(model, prices)
    except UnknownModelError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one response (as the API's ``usage`` object)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    #: Of the cache writes, those with a 1 h lifetime (the rest are 5 min).
    cache_creation_1h_tokens: int = 0
    #: The tier that served the request (``standard``, ``priority``, ``batch``), if said.
    service_tier: str | None = None

    @classmethod
    def from_api(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        creation = usage.get("cache_creation") or {}
        return cls(
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cache_creation_input_tokens=int(usage.get("cache_creation_input_tokens") or 0),
            cache_read_input_tokens=int(usage.get("cache_read_input_tokens") or 0),
            cache_creation_1h_tokens=int(creation.get("ephemeral_1h_input_tokens") or 0),
            service_tier=usage.get("service_tier") or None,
        )


def cost_usd(model: str, usage: Usage, *, batch: bool = False,
             prices: PriceTable = NO_PRICES) -> float:
    """The cost of ``usage`` on ``model``; ``batch=True``, or usage served in the
    ``batch`` tier, applies the batch discount."""
    p = price_of(model, prices)
    write_1h = min(usage.cache_creation_1h_tokens, usage.cache_creation_input_tokens)
    write_5m = usage.cache_creation_input_tokens - write_1h
    total = (
        usage.input_tokens * p.input
        + usage.output_tokens * p.output
        + write_5m * p.cache_write_5m
        + write_1h * p.cache_write_1h
        + usage.cache_read_input_tokens * p.cache_read
    ) / 1_000_000
    return total * BATCH_DISCOUNT if batch or usage.service_tier == "batch" else total


def usage_cost(model: str, usage: Usage, *, local: bool, batch: bool = False,
               prices: PriceTable = NO_PRICES) -> float | None:
    """What a request cost: 0 on the local model, ``None`` for a model with no known
    price (reported as unknown, never counted as zero)."""
    if local:
        return 0.0
    try:
        return cost_usd(model, usage, batch=batch, prices=prices)
    except UnknownModelError:
        return None


def worst_cost(model: str, input_tokens: float, max_tokens: int, *, local: bool,
               batch: bool = False, prices: PriceTable = NO_PRICES) -> float:
    """The most one request can cost (every ``max_tokens`` produced): 0 on the local
    model or with no known price (a budget refuses unpriced models before sending)."""
    if local:
        return 0.0
    try:
        p = price_of(model, prices)
    except UnknownModelError:
        return 0.0
    total = (input_tokens * p.input + max_tokens * p.output) / 1_000_000
    return total * BATCH_DISCOUNT if batch else total
