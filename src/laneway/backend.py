"""Which backend a command talks to: the real API or the embedded local one.

Kept apart from :mod:`laneway.provider` so that light commands (``laneway estimate``)
can answer the question without importing the ``anthropic`` SDK (about 2 s of start-up).
"""

from __future__ import annotations

import os

from laneway.errors import ConfigError


def choose_provider(provider: str = "auto") -> str:
    """``anthropic`` or ``local`` for ``--provider auto|anthropic|local``."""
    if provider not in ("auto", "anthropic", "local"):
        raise ConfigError(f"--provider {provider!r}: choose auto, anthropic or local")
    if provider != "auto":
        return provider
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL"):
        return "anthropic"
    return "local"
