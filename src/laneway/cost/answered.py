"""Which model answered, what the answer cost, and what the model asked for would have.

An answer names the model that made it (the Messages API's ``model`` field): the real
API names the model asked for (or a dated snapshot of it); laneway's embedded model
names itself (``smollm2-135m-instruct``) whatever was asked. Costs are the answering
model's: the local model is free. Where a Claude model was asked for and another model
answered, laneway says both once, with what the asked model would have cost, so that an
offline run still teaches the cost::

    asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, $0;
    on claude-haiku-4-5 this would cost $0.0123
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from laneway.cost.prices import NO_PRICES, PriceTable, Usage, is_local, usage_cost

_SNAPSHOT = re.compile(r"(?:-\d{8}|-latest)$")


def answered_by(asked: str, message: Mapping[str, Any] | None) -> str:
    """The model that made ``message`` (the one ``asked`` when it names none)."""
    model = (message or {}).get("model")
    return model if isinstance(model, str) and model else asked


def substituted(asked: str, answered: str) -> bool:
    """True when a model other than the (non-local) one asked for answered: not a dated
    snapshot or ``-latest`` alias of it."""
    if is_local(asked):
        return False
    return _SNAPSHOT.sub("", asked) != _SNAPSHOT.sub("", answered)


@dataclass(frozen=True, slots=True)
class Priced:
    """An answer's cost: on the model that answered, and on the one asked for."""

    asked: str
    answered: str
    #: On the answering model; ``None`` when its price is unknown.
    cost_usd: float | None
    #: On the model asked for, when another answered and the asked one has a price.
    asked_cost_usd: float | None

    @property
    def substituted(self) -> bool:
        return substituted(self.asked, self.answered)


def price_answer(asked: str, message: Mapping[str, Any] | None, usage: Usage, *,
                 free: bool = False, batch: bool = False,
                 prices: PriceTable = NO_PRICES) -> Priced:
    """Price one answer: ``free`` for a backend whose answers cost nothing whatever they
    name (laneway's embedded model); ``prices``: those the run was given."""
    answered = answered_by(asked, message)
    cost = usage_cost(answered, usage, local=free or is_local(answered), batch=batch,
                      prices=prices)
    asked_cost = (usage_cost(asked, usage, local=False, batch=batch, prices=prices)
                  if substituted(asked, answered) else None)
    return Priced(asked, answered, cost, asked_cost)


def usd(value: float | None) -> str:
    """``$0``, ``$0.0123``, or ``unknown``."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def note(asked: str, answered: str, cost_usd: float | None,
         asked_cost_usd: float | None) -> str:
    """The one line saying both models (empty when the model asked for answered)."""
    if not substituted(asked, answered):
        return ""
    where = "local, " if is_local(answered) else ""
    line = f"asked {asked}; answered by {answered}, {where}{usd(cost_usd)}"
    if asked_cost_usd is not None:
        line += f"; on {asked} this would cost {usd(asked_cost_usd)}"
    else:
        line += f"; no price known for {asked}"
    return line


def model_lines(models: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per model asked for and model that answered (``asked``, ``answered``,
    ``cost_usd``, ``asked_cost_usd``, as a run's summary keeps them): the answering
    model's name, or the :func:`note` naming both."""
    return [note(m["asked"], m["answered"], m["cost_usd"], m["asked_cost_usd"])
            or m["answered"] for m in models]
