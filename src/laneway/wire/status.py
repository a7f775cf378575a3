"""What an error answer means to a client that owns its retries: the one table.

Every caller that decides on an upstream's error answer reads it here: the provider (which
exception a run's policy gets), the gateway's relay (try again, or hand the answer back),
the governor's outcome, and the native runner (an errored batch result's type).

======  =========================  =============  =====  =======  =========================
status  API error type             kind           retry  attempt  why
======  =========================  =============  =====  =======  =========================
400     invalid_request_error      refused        no     -        the request's fault
401     authentication_error       refused        no     -        the key
402     billing_error              refused        no     -        the account
403     permission_error           refused        no     -        the key's permission
404     not_found_error            refused        no     -        what was named is not there
408     (timeout)                  failed         yes    yes      the API said it timed out
409     (conflict)                 failed         yes    yes      the SDK retries it
                                                                  (ANTHROPIC_API.md)
412,    invalid_request_error      refused        no     -        the request as it is
413,422,431,499, other 4xx
429     rate_limit_error           rate_limited   yes    no       waits its retry-after
500,    api_error                  failed         yes    yes      the API's own failure
501, other 5xx
502,    (an API error body)        failed         yes    yes      the API answered it
503,504
502,    (no API error body)        unreachable    yes    no       a proxy answered: the API
503,504                                                           was not reached (an
                                                                  outage, waited out)
529     overloaded_error           overloaded     yes    yes      the API is overloaded
======  =========================  =============  =====  =======  =========================

"attempt": whether another try uses one of the request's attempts (a 429 is not the
request's fault; an outage is waited out however long, see
:mod:`laneway.runners.api_wait`). An answer of any status whose body says
``overloaded_error`` is ``overloaded``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

#: The API's error types and the status each comes with.
STATUS_OF: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class Kind(StrEnum):
    REFUSED = "refused"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Kind

    @property
    def retry(self) -> bool:
        """Worth another try."""
        return self.kind is not Kind.REFUSED

    @property
    def attempt(self) -> bool:
        """Another try uses one of the request's attempts."""
        return self.kind in (Kind.FAILED, Kind.OVERLOADED)

    @property
    def governor(self) -> str:
        """The governor's release outcome (``rate_limited``, ``overloaded``, ``error``)."""
        return {Kind.RATE_LIMITED: "rate_limited",
                Kind.OVERLOADED: "overloaded"}.get(self.kind, "error")


#: Each status the API or the SDK names (the SDK's exception classes: a test keeps this
#: in step with the installed SDK); any other is read by its class (4xx, 5xx).
BY_STATUS: dict[int, Kind] = {
    400: Kind.REFUSED, 401: Kind.REFUSED, 402: Kind.REFUSED, 403: Kind.REFUSED,
    404: Kind.REFUSED, 408: Kind.FAILED, 409: Kind.FAILED, 412: Kind.REFUSED,
    413: Kind.REFUSED, 422: Kind.REFUSED, 429: Kind.RATE_LIMITED, 431: Kind.REFUSED,
    499: Kind.REFUSED, 500: Kind.FAILED, 501: Kind.FAILED, 502: Kind.FAILED,
    503: Kind.FAILED, 504: Kind.FAILED, 529: Kind.OVERLOADED,
}
#: The statuses a proxy answers with when it cannot reach what is behind it.
PROXY_STATUSES = frozenset({502, 503, 504})


def outcome(status: int, error_type: str | None = None) -> Outcome:
    """The outcome of an error answer of ``status`` whose body's ``error.type`` is
    ``error_type`` (``None``: the body is not an API error body)."""
    if status in PROXY_STATUSES and error_type is None:
        return Outcome(Kind.UNREACHABLE)
    if error_type == "overloaded_error":
        return Outcome(Kind.OVERLOADED)
    kind = BY_STATUS.get(status)
    if kind is None:
        kind = Kind.FAILED if status >= 500 else Kind.REFUSED
    return Outcome(kind)


def type_outcome(error_type: str) -> Outcome:
    """The outcome of an error known by its type alone (an errored batch result)."""
    return outcome(STATUS_OF.get(error_type, 400), error_type)


_TYPE_OF = {status: error_type for error_type, status in STATUS_OF.items()}


def error_type_for(status: int) -> str:
    """The API's error type for an answer of ``status`` that has no type of its own."""
    return _TYPE_OF.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


def error_type_of(body: Any) -> str | None:
    """``error.type`` of an API error body (parsed, or its bytes); ``None`` if it is not
    one."""
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):
            return None
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("type"), str):
            return str(inner["type"])
    return None


def answer_outcome(status: int, body: bytes) -> Outcome:
    """:func:`outcome` of an error answer as it came: its status and body bytes."""
    return outcome(status, error_type_of(body))


__all__ = ["BY_STATUS", "PROXY_STATUSES", "STATUS_OF", "Kind", "Outcome", "answer_outcome",
           "error_type_for", "error_type_of", "outcome", "type_outcome"]
