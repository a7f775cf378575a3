"""Wire-format pieces of the Anthropic API: ids, error bodies and error statuses."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, date, datetime
from typing import Any

from fastapi.responses import JSONResponse

#: HTTP status for each error type, as the API sends them.
STATUS_OF: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def new_id(prefix: str) -> str:
    """An id like the API's: ``msg_01...``, ``req_01...``, ``msgbatch_01...``."""
    return prefix + "_01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def rfc3339(ts: float | None) -> str | None:
    """A UNIX time as the API writes times (``2026-11-25T03:44:41.123456Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class APIError(Exception):
    """An error answer of the local API; ``response()`` renders it on the wire."""

    def __init__(
        self, error_type: str, message: str, *, headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = STATUS_OF[error_type]
        self.headers = dict(headers or {})
        #: ``error.details`` (``{"error_code": ..., ...}``): what the SDK picks its
        #: exception class by, and what its thread helpers recover from.
        self.details = details

    def body(self, request_id: str) -> dict[str, Any]:
        return error_body(self.error_type, self.message, request_id, details=self.details)


def error_body(error_type: str, message: str, request_id: str, *,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": request_id}


def error_response(err: APIError, request_id: str) -> JSONResponse:
    headers = {"request-id": request_id, **err.headers}
    return JSONResponse(err.body(request_id), status_code=err.status, headers=headers)


def invalid(field: str, message: str) -> APIError:
    """A 400 that names the field, as ``messages.0.content: ...``."""
    return APIError("invalid_request_error", f"{field}: {message}")


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
