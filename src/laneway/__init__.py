"""laneway: run Claude workloads in the mode each one needs.

Streaming for a person who is waiting, batch (parallel realtime requests or native
Message Batches at half price) for bulk work, a durable ledger so nothing is lost or paid
for twice, and one governor that shares the rate limits with people first.

>>> import laneway
>>> summary = await laneway.run("articles.jsonl", "results.jsonl")   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from laneway.errors import (
    AuthenticationError,
    BatchesUnsupportedError,
    BudgetExceededError,
    ConfigError,
    ConnectionLostError,
    DiskFullError,
    InputError,
    LanewayError,
    OverloadedError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitedError,
    RequestError,
    RetryableError,
    RunMismatchError,
    RunNotFoundError,
    ServerError,
    StalledError,
    StoreError,
    StreamError,
    UnknownModelError,
)

if TYPE_CHECKING:
    from laneway.agent import HybridAgent
    from laneway.chat import Conversation, Turn
    from laneway.cost.prices import Usage, cost_usd
    from laneway.governor.buckets import Lane, RateLimits
    from laneway.governor.core import Governor
    from laneway.jobs.formats import Job, JobDefaults, read_jobs, write_results
    from laneway.local import LocalConfig, serve_local
    from laneway.provider.backend import open_provider
    from laneway.provider.client import Provider, Reply
    from laneway.runs.config import RunConfig
    from laneway.runs.library import Summary, results_of, run
    from laneway.runs.progress import Progress
    from laneway.store import StoreSettings, open_store

__version__ = "0.1.0"

#: Where each public name lives. They are imported on first use (PEP 562), so the CLI
#: and ``import laneway.errors`` start without loading the SDK, SQLAlchemy or FastAPI.
_LAZY: dict[str, str] = {
    "Conversation": "laneway.chat",
    "Governor": "laneway.governor.core",
    "HybridAgent": "laneway.agent",
    "Job": "laneway.jobs.formats",
    "JobDefaults": "laneway.jobs.formats",
    "Lane": "laneway.governor.core",
    "LocalConfig": "laneway.local",
    "Progress": "laneway.runs.progress",
    "Provider": "laneway.provider.client",
    "RateLimits": "laneway.governor.core",
    "Reply": "laneway.provider.client",
    "RunConfig": "laneway.runs.config",
    "StoreSettings": "laneway.store",
    "Summary": "laneway.runs.library",
    "Turn": "laneway.chat",
    "Usage": "laneway.cost.prices",
    "cost_usd": "laneway.cost.prices",
    "open_provider": "laneway.provider.backend",
    "open_store": "laneway.store",
    "read_jobs": "laneway.jobs.formats",
    "results_of": "laneway.runs.library",
    "run": "laneway.runs.library",
    "serve_local": "laneway.local",
    "write_results": "laneway.jobs.formats",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'laneway' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AuthenticationError",
    "BatchesUnsupportedError",
    "BudgetExceededError",
    "ConfigError",
    "ConnectionLostError",
    "Conversation",
    "DiskFullError",
    "Governor",
    "HybridAgent",
    "InputError",
    "Job",
    "JobDefaults",
    "Lane",
    "LanewayError",
    "LocalConfig",
    "OverloadedError",
    "Progress",
    "Provider",
    "ProviderError",
    "ProviderTimeoutError",
    "RateLimitedError",
    "RateLimits",
    "Reply",
    "RequestError",
    "RetryableError",
    "RunConfig",
    "RunMismatchError",
    "RunNotFoundError",
    "ServerError",
    "StalledError",
    "StoreError",
    "StoreSettings",
    "StreamError",
    "Summary",
    "Turn",
    "UnknownModelError",
    "Usage",
    "__version__",
    "cost_usd",
    "open_provider",
    "open_store",
    "read_jobs",
    "results_of",
    "run",
    "serve_local",
    "write_results",
]
