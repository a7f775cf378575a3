"""Cost figures for known models, cache tokens, the batch discount, unknown models."""

from __future__ import annotations

import pytest

from laneway.errors import UnknownModelError
from laneway.pricing import Usage, cost_usd, known, price_of


@pytest.mark.parametrize(("model", "expected"), [
    # 1M input + 1M output tokens
    ("claude-opus-4-5", 5 + 25),
    ("claude-opus-5", 5 + 25),
    ("claude-sonnet-5", 2 + 10),
    ("claude-sonnet-4-5", 3 + 15),
    ("claude-sonnet-4-6", 3 + 15),
    ("claude-haiku-4-5", 1 + 5),
    ("claude-haiku-4-5-20251001", 1 + 5),
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
