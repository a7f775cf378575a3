"""Engines that generate text for the local API: ``echo`` (tests) and ``smollm2`` (a real model)."""

from __future__ import annotations

from laneway.local.engines.base import Engine, Prompt, SamplingParams
from laneway.local.engines.echo import EchoEngine

__all__ = ["EchoEngine", "Engine", "Prompt", "SamplingParams", "make_engine", "smollm2_available"]


def smollm2_available() -> bool:
    """True when llama-cpp-python and the SmolLM2 weights are installed."""
    from laneway.local.engines import model_file

    return model_file.available()


def make_engine(name: str, *, ttft_ms: float = 0.0, token_ms: float = 0.0) -> Engine:
    """Build the engine called ``name`` (``echo`` or ``smollm2``)."""
    if name == "echo":
        return EchoEngine(ttft_ms=ttft_ms, token_ms=token_ms)
    if name == "smollm2":
        from laneway.local.engines.smollm2 import SmolLM2Engine

        return SmolLM2Engine()
    from laneway.errors import ConfigError

    raise ConfigError(f"unknown engine {name!r}: choose echo or smollm2")
