"""laneway: run Claude workloads in the mode each one needs."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
