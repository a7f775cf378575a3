"""Values as the Anthropic API writes them: ids and times."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """An id like the API's: ``msg_01...``, ``req_01...``, ``msgbatch_01...``."""
    return prefix + "_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def rfc3339(ts: float | None) -> str | None:
    """A UNIX time as the API writes times (``2026-11-25T03:44:41.123456Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
