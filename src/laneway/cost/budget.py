"""``--budget`` needs a price for every model a run sends: checked before anything is sent.

A model with no known price would count as zero against the budget, so a run with a
budget and such a model is refused (:class:`~laneway.errors.UnknownModelError`, one line
naming the model) unless ``--price IN/OUT`` gives its price in USD per million tokens.
The local model costs nothing and is never refused.
"""

from __future__ import annotations

from sqlalchemy import select

from laneway.cost.prices import NO_PRICES, Price, PriceTable, given_price, known
from laneway.errors import ConfigError, UnknownModelError
from laneway.store import Store
from laneway.store import schema as S
from laneway.store.statuses import FINAL_JOBS


def parse_price(text: str) -> Price:
    """``"IN/OUT"`` (USD per million input and output tokens) as a :class:`Price`."""
    parts = text.split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        input_usd, output_usd = float(parts[0]), float(parts[1])
    except ValueError:
        raise ConfigError(f"--price {text!r}: give IN/OUT in USD per million tokens, "
                          "e.g. --price 3/15") from None
    if not (0 <= input_usd < float("inf") and 0 <= output_usd < float("inf")):
        raise ConfigError(f"--price {text!r}: prices must be numbers >= 0")
    return given_price(input_usd, output_usd)


def unpriced_models(store: Store, run_id: str) -> list[str]:
    """Models of the run's unfinished jobs that have no known price, sorted."""
    q = (select(S.jobs.c.model).distinct()
         .where(S.jobs.c.run_id == run_id, S.jobs.c.status.not_in(FINAL_JOBS)))
    with store.engine.connect() as conn:
        models = [str(m) for m in conn.scalars(q)]
    return sorted(m for m in models if not known(m))


def require_prices(models: list[str], *, budget_usd: float | None,
                   price: Price | None) -> PriceTable:
    """The run's price table: ``models`` (those with no known price) at ``price``
    (``--price``), or refuse a budget that cannot count them.

    Without a budget an unknown price is only reported (its cost is not counted).
    """
    if not models:
        return NO_PRICES
    if price is not None:
        return PriceTable({model: price for model in models})
    if budget_usd is not None:
        raise UnknownModelError(models[0], budget=True)
    return NO_PRICES
