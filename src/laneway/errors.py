"""laneway's exceptions: one rooted tree, so ``except LanewayError`` catches them all.

::

    LanewayError
    ├── ConfigError                 a bad option, setting, DSN, deadline or budget
    │   └── RunNotFoundError        no run of that name in the ledger
    ├── InputError                  a bad line of an input file (path, line, field)
    ├── StoreError                  the ledger cannot be opened, read or written
    │   ├── RunMismatchError        a re-run whose input or options differ from the run's
    │   └── DiskFullError           no space left for the ledger or the results (exit 1)
    ├── UnknownModelError           a model with no known price (never priced as zero)
    ├── BudgetExceededError         new work would exceed --budget
    └── ProviderError               the API answered with an error, or did not answer
        ├── RequestError            4xx: the request itself is wrong; never retried
        │   ├── AuthenticationError 401/403: the key is missing, bad or not allowed
        │   └── BatchesUnsupportedError the upstream has no Message Batches (404/405)
        └── RetryableError          worth another try after a pause
            ├── RateLimitedError    429 (``retry_after_s`` from the header, if any)
            ├── OverloadedError     529, or an ``overloaded_error`` event mid-stream
            ├── ServerError         500 and other 5xx
            ├── StreamError         any other ``error`` event after a 200 status
            ├── StalledError        a stream that sent no content within the idle timeout
            ├── ProviderTimeoutError the request timed out
            └── ConnectionLostError the connection failed or dropped

The SDK's exceptions become these in one place, :mod:`laneway.provider.client`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


class LanewayError(Exception):
    """The root of every error laneway raises on purpose."""


class ConfigError(LanewayError):
    """An option, setting or environment value that cannot be used."""


class RunNotFoundError(ConfigError):
    """No run of that name (or id) in the ledger."""


class InputError(LanewayError):
    """A line of an input file that cannot become a job.

    ``str()`` is the one-line message a user sees: ``file:line: field: reason``.
    """

    def __init__(
        self, reason: str, *, path: str | Path | None = None, line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.reason = reason
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
        parts = [p for p in (where, field) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)


class StoreError(LanewayError):
    """The ledger could not be opened, migrated, read or written."""


class RunMismatchError(StoreError):
    """A run name was reused with a different input or different options."""


class DiskFullError(StoreError):
    """The disk holding the ledger or the results file is full: nothing committed is
    lost, and running the same command again, once there is space, carries on."""

    def __init__(self, detail: str) -> None:
        self.detail = detail
        super().__init__(f"disk full: {detail}; free space and run the same command")


class UnknownModelError(LanewayError):
    """A model whose price laneway does not know."""

    def __init__(self, model: str, *, budget: bool = False) -> None:
        self.model = model
        if budget:  # refused before sending: the budget could not count its cost
            super().__init__(
                f"--budget: no price known for model {model!r}, so its cost cannot be "
                "counted; pass --price IN/OUT (USD per million input/output tokens)"
            )
            return
        super().__init__(
            f"unknown model {model!r}: no price known, so its cost is not counted "
            "(pass a known model, or --price IN/OUT in USD per million tokens)"
        )


class BudgetExceededError(LanewayError):
    """Sending more work would spend past the budget."""

    def __init__(self, *, budget_usd: float, spent_usd: float) -> None:
        self.budget_usd = budget_usd
        self.spent_usd = spent_usd
        super().__init__(
            f"budget reached: ${spent_usd:.4f} spent or committed of ${budget_usd:.4f}; "
            "no new work is sent"
        )


class ProviderError(LanewayError):
    """The API answered with an error, or could not be reached."""

    #: The wire error type, e.g. ``rate_limit_error`` (``None`` for network failures).
    error_type: str | None = None
    #: How long the server asked to wait (its ``retry-after``): only a 429 says.
    retry_after_s: float | None = None

    def __init__(
        self, message: str, *, status: int | None = None, error_type: str | None = None,
        request_id: str | None = None, ratelimit_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.message = message
        self.status = status
        if error_type is not None:
            self.error_type = error_type
        self.request_id = request_id
        #: The answer's ``anthropic-ratelimit-*`` headers, if it had any: what the server
        #: counted, which the governor trusts over its own count after a 429.
        self.ratelimit_headers = dict(ratelimit_headers or {})
        super().__init__(message)

    def as_wire_error(self) -> dict[str, str]:
        """The ``{"type", "message"}`` object of an Anthropic error body."""
        return {"type": self.error_type or "api_error", "message": self.message}


class RequestError(ProviderError):
    """A 4xx answer: the request is wrong and sending it again will not help."""

    error_type = "invalid_request_error"


class AuthenticationError(RequestError):
    """The API key is missing, invalid or lacks permission."""

    error_type = "authentication_error"


class BatchesUnsupportedError(RequestError):
    """The upstream has no Message Batches: it answered a batch's create with 404 or 405
    (or an error saying batches are not supported)."""

    error_type = "not_found_error"


class RetryableError(ProviderError):
    """A failure that another attempt, after a pause, may get past."""

    error_type = "api_error"


class RateLimitedError(RetryableError):
    """429: over a rate limit. ``retry_after_s`` is the server's ``retry-after``."""

    error_type = "rate_limit_error"

    def __init__(
        self, message: str, *, retry_after_s: float | None = None, status: int | None = 429,
        request_id: str | None = None, ratelimit_headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, status=status, request_id=request_id,
                         ratelimit_headers=ratelimit_headers)
        self.retry_after_s = retry_after_s


class OverloadedError(RetryableError):
    """529, or an ``overloaded_error`` event in the middle of a stream."""

    error_type = "overloaded_error"


class ServerError(RetryableError):
    """500 or another 5xx answer."""

    error_type = "api_error"


class StreamError(RetryableError):
    """An ``error`` event after the stream had started with status 200."""


class StalledError(RetryableError):
    """A stream that delivered no content (only pings, or nothing) for too long."""

    error_type = "timeout_error"


class ProviderTimeoutError(RetryableError):
    """The request took longer than its timeout."""

    error_type = "timeout_error"


class ConnectionLostError(RetryableError):
    """The connection could not be made, or dropped before the answer was complete."""

    error_type = "connection_error"
