"""The public surface is exactly what __all__ says (so a change to it is deliberate)."""

from __future__ import annotations

import laneway

EXPECTED = {
    "AuthenticationError", "BudgetExceededError", "ConfigError", "ConnectionLostError",
    "Conversation", "Governor", "HybridAgent", "InputError", "Job", "JobDefaults", "Lane",
    "LanewayError", "LocalConfig", "OverloadedError", "Progress", "Provider", "ProviderError",
    "ProviderTimeoutError", "RateLimitedError", "RateLimits", "Reply", "RequestError",
    "RetryableError", "RunConfig", "RunMismatchError", "ServerError", "StalledError",
    "StoreError", "StoreSettings", "StreamError", "Summary", "Turn", "UnknownModelError",
    "Usage", "__version__", "cost_usd", "open_provider", "open_store", "read_jobs",
    "results_of", "run", "serve_local", "write_results",
    # what a caller catches: a full disk, a run name that is not there, an upstream
    # without Message Batches
    "DiskFullError", "RunNotFoundError", "BatchesUnsupportedError",
}


def test_every_error_class_of_laneway_errors_is_public() -> None:
    import inspect

    from laneway import errors

    defined = {n for n, v in vars(errors).items()
               if inspect.isclass(v) and issubclass(v, errors.LanewayError)
               and v.__module__ == errors.__name__}
    assert defined <= set(laneway.__all__)


def test_all_is_pinned() -> None:
    assert set(laneway.__all__) == EXPECTED
    for name in laneway.__all__:
        assert hasattr(laneway, name), name


def test_every_error_is_a_laneway_error() -> None:
    errors = [getattr(laneway, n) for n in laneway.__all__ if n.endswith("Error")]
    assert errors
    assert all(issubclass(e, laneway.LanewayError) for e in errors)
