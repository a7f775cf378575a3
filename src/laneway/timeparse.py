"""Parse ``--deadline`` (``90s``, ``30m``, ``2h``, ``1d``, or a local ISO time) and durations."""

from __future__ import annotations

import re
import time
from datetime import datetime

from laneway.errors import ConfigError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day)s?\s*$", re.I)
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400,
           "day": 86400}


def duration_s(text: str) -> float | None:
    m = _DURATION.match(text)
    if not m:
        return None
    return float(m.group(1)) * _UNIT_S[m.group(2).lower()]


def parse_deadline(text: str, *, now: float | None = None) -> float:
    """The deadline as a UNIX time."""
    now = time.time() if now is None else now
    seconds = duration_s(text)
    if seconds is not None:
        return now + seconds
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--deadline {text!r}: give a duration (90s, 30m, 2h, 1d) or a time "
            "(2026-12-01T09:00)"
        ) from None
    at = when.timestamp()
    if at <= now:
        raise ConfigError(f"--deadline {text!r} is already past")
    return at


def human_s(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
    return f"{seconds / 86400:.1f}d"
