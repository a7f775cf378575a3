"""The Anthropic API's errors on the wire: error bodies, the status of each type, and the
answers laneway's servers make themselves.

- :class:`APIError` is raised by a server's code and rendered by
  :func:`error_response` under the request's id (the local API gives every request one
  in a middleware);
- :func:`api_error` is the gateway's own answer (a refusal, an upstream that never
  answered, a batch not found): a fresh ``req_...`` id, the same in the ``request-id``
  header and the body's ``request_id``, as the API's own answers have; and, when the
  gateway has already retried (or waited out) what it answers, ``x-should-retry:
  false``, which the SDKs obey before any status rule (SDK 2.x ``_should_retry``), so a
  client does not multiply the wait the gateway already spent.

Messages are the API's own words where the API has them (``Overloaded``, ``Internal
server error``) and laneway's plain words otherwise; never a library's text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from laneway.wire.ids import new_id
from laneway.wire.status import STATUS_OF

if TYPE_CHECKING:  # the web stack is loaded by the answers alone: the CLI reads bodies too
    from fastapi.responses import JSONResponse

#: The response header the SDKs obey before any status rule (``true`` / ``false``).
SHOULD_RETRY = "x-should-retry"
#: What an API error answer's ``request_id`` matches: the ``request-id`` header.
REQUEST_ID = "request-id"


class APIError(Exception):
    """An error answer of the API (the local API's, the gateway's); :func:`error_response`
    renders it on the wire."""

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


def error_body(error_type: str, message: str, request_id: str | None, *,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The one error body of the API: an error answer's (with its ``request_id``), an
    errored batch result's, and, without a ``request_id``, a stream's ``error`` event's
    ``data``."""
    error: dict[str, Any] = {"type": error_type, "message": message}
    if details is not None:
        error["details"] = details
    body: dict[str, Any] = {"type": "error", "error": error}
    if request_id is not None:
        body["request_id"] = request_id
    return body


def error_response(err: APIError, request_id: str) -> JSONResponse:
    from fastapi.responses import JSONResponse
    headers = {REQUEST_ID: request_id, **err.headers}
    return JSONResponse(err.body(request_id), status_code=err.status, headers=headers)


def api_error(status: int, error_type: str, message: str, *,
              headers: Mapping[str, str] | None = None, retried: bool = False,
              details: dict[str, Any] | None = None) -> JSONResponse:
    """One of the gateway's own error answers, in the API's shape under a fresh request
    id (header and body alike). ``retried``: the gateway already tried again (or waited
    its limit) for this answer, so the client is told not to (``x-should-retry:
    false``). ``headers`` add to those (``retry-after``, ``www-authenticate``).

    The answer is a Starlette response, hence an ASGI app: a middleware sends it with
    ``await api_error(...)(scope, receive, send)``.
    """
    from fastapi.responses import JSONResponse

    request_id = new_id("req")
    out = {**(headers or {}), REQUEST_ID: request_id}
    if retried:
        out[SHOULD_RETRY] = "false"
    return JSONResponse(error_body(error_type, message, request_id, details=details),
                        status_code=status, headers=out)


def gateway_answer(err: APIError, *, retried: bool = False) -> JSONResponse:
    """:func:`api_error` for an :class:`APIError` the gateway's code raised."""
    return api_error(err.status, err.error_type, err.message, headers=err.headers,
                     retried=retried, details=err.details)


#: The Messages API's limit on a request body (32 MB); a Message Batch's is
#: :data:`laneway.wire.batches.BATCH_MAX_BYTES`.
MESSAGES_MAX_BYTES = 32 * 1000 * 1000


def too_large(limit_bytes: int) -> APIError:
    """The 413 of a body over ``limit_bytes``, in the same words wherever it is made (the
    local API, the gateway's edge): a client sees one answer, direct or relayed."""
    return APIError("request_too_large",
                    f"Request exceeds the maximum allowed number of bytes ({limit_bytes})")


def no_route(method: str, path: str, *, method_not_allowed: bool = False) -> APIError:
    """The 404 of a path no route serves (or serves with another method), in the same
    words on the local API and ``laneway serve``."""
    if method_not_allowed:
        return APIError("not_found_error", f"{method} {path} is not allowed")
    return APIError("not_found_error", f"Not found: {path}")


def unparsable(exc: Exception) -> APIError:
    """The 400 of a body that is not JSON (``exc``: what the parser said)."""
    return APIError("invalid_request_error", f"There was an error parsing the body: {exc}")


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
        raise invalid("anthropic-version", f"{value!r} is not a valid version (a date "
                      "such as 2023-06-01 or 2026-10-21)") from None
