"""The local Anthropic-compatible API: laneway's embedded backend and its test bed."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from laneway.local.config import LocalConfig

if TYPE_CHECKING:
    from laneway.local.server import RunningLocal, serve_local, start_local

__all__ = ["LocalConfig", "RunningLocal", "serve_local", "start_local"]

#: The server (FastAPI, uvicorn, the engines) loads on first use, so ``laneway local
#: --help`` and a ``LocalConfig`` cost no more than they need.
_LAZY = {"RunningLocal", "serve_local", "start_local"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'laneway.local' has no attribute {name!r}")
    value = getattr(importlib.import_module("laneway.local.server"), name)
    globals()[name] = value
    return value
