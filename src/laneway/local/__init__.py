"""The local Anthropic-compatible API: laneway's embedded backend and its test bed."""

from __future__ import annotations

from laneway.local.config import LocalConfig
from laneway.local.server import RunningLocal, serve_local, start_local

__all__ = ["LocalConfig", "RunningLocal", "serve_local", "start_local"]
