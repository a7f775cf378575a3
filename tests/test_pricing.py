"""Cost figures for known models, cache tokens, the batch discount, unknown models."""

from __future__ import annotations

import pytest

from laneway.cost.budget import parse_price, require_prices
from laneway.cost.prices import Usage, cost_usd, known, price_of
from laneway.errors import ConfigError, UnknownModelError


@pytest.mark.parametrize(("model", "expected"), [
    # 1M input + 1M output tokens
    ("claude-opus-4-5", 5 + 25),
    ("claude-opus-5", 5 + 25),
    ("claude-sonnet-5", 2 + 10),
    ("claude-sonnet-4-5", 3 + 15),
    ("claude-sonnet-4-6", 3 + 15),
    ("claude-haiku-4-5", 1 + 5),
    ("claude-haiku-4-5-20251001", 1 + 5),
    # Older models, still served, with their aliases and dated ids.
    ("claude-opus-4-1", 15 + 75),
    ("claude-opus-4-1-20250805", 15 + 75),
    ("claude-opus-4-0", 15 + 75),
    ("claude-opus-4-20250514", 15 + 75),
    ("claude-sonnet-4-0", 3 + 15),
    ("claude-sonnet-4-20250514", 3 + 15),
    ("claude-3-7-sonnet-latest", 3 + 15),
    ("claude-3-7-sonnet-20250219", 3 + 15),
    ("claude-3-5-haiku-latest", 0.80 + 4),
    ("claude-3-5-haiku-20241022", 0.80 + 4),
    ("claude-3-haiku-20240307", 0.25 + 1.25),
])
def test_standard_prices(model: str, expected: float) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_usd(model, usage) == pytest.approx(expected)
    assert cost_usd(model, usage, batch=True) == pytest.approx(expected / 2)


def test_small_request_cost() -> None:
    usage = Usage(input_tokens=1200, output_tokens=350)
    # 1200 * $3/M + 350 * $15/M
    assert cost_usd("claude-sonnet-4-5", usage) == pytest.approx(0.0036 + 0.00525)


def test_cache_tokens() -> None:
    usage = Usage.from_api({
        "input_tokens": 100, "output_tokens": 10,
        "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 50_000,
        "cache_creation": {"ephemeral_1h_input_tokens": 1000, "ephemeral_5m_input_tokens": 2000},
    })
    expected = (100 * 1 + 10 * 5 + 2000 * 1.25 + 1000 * 2 + 50_000 * 0.10) / 1e6
    assert cost_usd("claude-haiku-4-5", usage) == pytest.approx(expected)
    assert cost_usd("claude-haiku-4-5", usage, batch=True) == pytest.approx(expected / 2)


def test_service_tier_batch_gets_the_batch_price() -> None:
    """Usage says which tier served it: a batch result is half price whoever prices it."""
    api = {"input_tokens": 1_000_000, "output_tokens": 1_000_000, "service_tier": "batch"}
    assert Usage.from_api(api).service_tier == "batch"
    assert cost_usd("claude-sonnet-5", Usage.from_api(api)) == pytest.approx(6.0)
    standard = Usage.from_api({**api, "service_tier": "standard"})
    assert cost_usd("claude-sonnet-5", standard) == pytest.approx(12.0)
    assert cost_usd("claude-sonnet-5", standard, batch=True) == pytest.approx(6.0)


def test_unknown_model_is_never_zero() -> None:
    with pytest.raises(UnknownModelError, match="claude-imaginary-9"):
        cost_usd("claude-imaginary-9", Usage(input_tokens=10))
    assert not known("gpt-4")
    assert price_of("smollm2").input == 0.0


def test_older_cache_prices() -> None:
    usage = Usage(cache_creation_input_tokens=1_000_000, cache_read_input_tokens=1_000_000)
    assert cost_usd("claude-opus-4-1", usage) == pytest.approx(18.75 + 1.50)
    assert cost_usd("claude-3-5-haiku-latest", usage) == pytest.approx(1.0 + 0.08)


def test_a_given_price_for_an_unknown_model() -> None:
    with pytest.raises(UnknownModelError, match="--price IN/OUT"):
        require_prices(["claude-made-up-1"], budget_usd=0.05, price=None)
    require_prices(["claude-made-up-1"], budget_usd=None, price=None)  # reported, not refused
    assert not known("claude-made-up-1")
    table = require_prices(["claude-made-up-1"], budget_usd=0.05, price=parse_price("2/8"))
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000)
    assert cost_usd("claude-made-up-1", usage, prices=table) == pytest.approx(2 + 8)
    assert known("claude-made-up-1", table)
    assert not known("claude-made-up-1")  # the run's table only: never process-wide
    with pytest.raises(UnknownModelError):
        cost_usd("claude-made-up-1", usage)
    # known: its own price, whatever the run was given
    assert cost_usd("claude-sonnet-4-6", usage, prices=table) == pytest.approx(3 + 15)
    for bad in ("3", "a/b", "-1/2", "1/2/3", "nan/1"):
        with pytest.raises(ConfigError, match="--price"):
            parse_price(bad)


def test_one_helper_prices_a_usage_and_the_worst_case() -> None:
    from laneway.cost.prices import Usage, cost_usd, usage_cost, worst_cost

    usage = Usage(input_tokens=1000, output_tokens=500)
    assert usage_cost("claude-haiku-4-5", usage, local=True) == 0.0
    assert usage_cost("no-such-model", usage, local=False) is None
    full = usage_cost("claude-haiku-4-5", usage, local=False)
    assert full == cost_usd("claude-haiku-4-5", usage) and full > 0
    assert usage_cost("claude-haiku-4-5", usage, local=False, batch=True) == full / 2
    worst = worst_cost("claude-haiku-4-5", 1000, 500, local=False)
    assert worst == full  # every max_tokens produced: the same tokens as this usage
    assert worst_cost("claude-haiku-4-5", 1000, 500, local=False, batch=True) == worst / 2
    assert worst_cost("claude-haiku-4-5", 1000, 500, local=True) == 0.0
    assert worst_cost("no-such-model", 1000, 500, local=False) == 0.0
