"""Values as the Anthropic API writes them: ids, times and ``anthropic-version``."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime

from laneway.wire.errors import APIError

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """An id like the API's: ``msg_01...``, ``req_01...``, ``msgbatch_01...``."""
    return prefix + "_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def rfc3339(ts: float | None) -> str | None:
    """A UNIX time as the API writes times (``2026-11-25T03:44:41.123456Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


_VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}$")
#: The first version of the API; SDK 2.x sends ``2026-10-21``, older clients ``2023-06-01``.
FIRST_VERSION = date(2023, 1, 1)


def check_version(value: str | None) -> None:
    """Accept any dated ``anthropic-version`` the API has had (a missing header is taken
    as the oldest); a malformed one is a 400 naming the header."""
    if value is None:
        return
    try:
        if not _VERSION.match(value) or date.fromisoformat(value) < FIRST_VERSION:
            raise ValueError
    except ValueError:
        raise APIError(
            "invalid_request_error",
            f"anthropic-version: {value!r} is not a valid version (a date such as "
            "2023-06-01 or 2026-10-21)",
        ) from None
