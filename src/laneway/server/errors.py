"""How ``laneway serve`` answers a failure: one status table, one error body.

Every error answer, from a route, an exception handler or a middleware, has the
Anthropic API's shape (:func:`laneway.wire.errors.error_body`), under a fresh request
id that the ``request-id`` header repeats::

    {"type": "error", "error": {"type": "rate_limit_error", "message": "..."},
     "request_id": "req_..."}

and the ``error`` event of a chat stream is that body without ``request_id``, as the
API's own stream ``error`` events are.

A :class:`~laneway.errors.LanewayError` gets its status from :data:`STATUS`, looked up
along its class's ancestry (the nearest listed class wins):

=========================  ======  ======================================================
error                      status  why
=========================  ======  ======================================================
RateLimitedError           429     with ``retry-after`` (whole seconds, rounded up) when
                                   the upstream said how long to wait
AuthenticationError        401     403 when the upstream answered 403 (a key without
                                   permission)
RequestError               400     the upstream refused the request as it is
InputError, ConfigError,   400     the client sent something laneway cannot use
UnknownModelError
BudgetExceededError        400     more work would spend past the run's budget
RunNotFoundError           404     no such run in the ledger
RunMismatchError           409     a run name reused with other input or options
DiskFullError              507     Insufficient Storage: retrying will not help until
                                   space is freed on the server (so not 503)
StoreError                 503     the ledger cannot be reached (a database outage)
RetryableError             503     the backend is unavailable (overloaded, 5xx, timed
                                   out, unreachable); ``retry-after`` when known
ProviderError              502     any other answer the backend should not have given
LanewayError               400     a new error not listed here yet
=========================  ======  ======================================================

A route that refuses a request for a reason of HTTP itself (a body too large, a
content type it does not read) raises :class:`HTTPError` with its own status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from laneway.errors import (
    AuthenticationError,
    BudgetExceededError,
    ConfigError,
    DiskFullError,
    InputError,
    LanewayError,
    ProviderError,
    RateLimitedError,
    RequestError,
    RetryableError,
    RunMismatchError,
    RunNotFoundError,
    StoreError,
    UnknownModelError,
)
from laneway.wire.errors import APIError, api_error, error_body, gateway_answer, no_route
from laneway.wire.status import error_type_for

#: ``LanewayError`` subclass -> (HTTP status, default error type). An error of the
#: provider keeps its own wire type (``rate_limit_error``, ``overloaded_error``, ...).
STATUS: Mapping[type[LanewayError], tuple[int, str]] = {
    RateLimitedError: (429, "rate_limit_error"),
    AuthenticationError: (401, "authentication_error"),
    RequestError: (400, "invalid_request_error"),
    RetryableError: (503, "api_error"),
    ProviderError: (502, "api_error"),
    InputError: (400, "invalid_request_error"),
    ConfigError: (400, "invalid_request_error"),
    UnknownModelError: (400, "invalid_request_error"),
    BudgetExceededError: (400, "invalid_request_error"),
    RunNotFoundError: (404, "not_found_error"),
    RunMismatchError: (409, "conflict_error"),
    DiskFullError: (507, "storage_error"),
    StoreError: (503, "api_error"),
    LanewayError: (400, "invalid_request_error"),
}


class HTTPError(Exception):
    """Raised by a route to answer ``status`` with an error body of ``error_type``."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def status_of(exc: LanewayError) -> int:
    """The HTTP status of ``exc``: see the module's table."""
    status = next(STATUS[c][0] for c in type(exc).__mro__ if c in STATUS)
    if isinstance(exc, AuthenticationError) and exc.status == 403:
        return 403
    return status


def type_of(exc: BaseException) -> str:
    """The error type a client sees for ``exc`` (``api_error`` for a bug of laneway's)."""
    if isinstance(exc, ProviderError):
        if isinstance(exc, AuthenticationError) and exc.status == 403:
            return "permission_error"
        return exc.as_wire_error()["type"]
    if isinstance(exc, LanewayError):
        return next(STATUS[c][1] for c in type(exc).__mro__ if c in STATUS)
    return "api_error"


def message_of(exc: BaseException) -> str:
    """What a client is told: laneway's own message, never a bug's details."""
    if isinstance(exc, ProviderError):
        return exc.message
    if isinstance(exc, LanewayError):
        return str(exc)
    return "internal error in laneway serve"


def body_of(exc: BaseException) -> dict[str, Any]:
    """A chat stream's ``error`` event for any exception (no ``request_id``: the
    stream's answer has none of its own)."""
    return error_body(type_of(exc), message_of(exc), None)


def headers_of(exc: BaseException) -> dict[str, str]:
    """``retry-after`` (whole seconds) when the error knows how long to wait."""
    if isinstance(exc, ProviderError) and exc.retry_after_s is not None \
            and exc.retry_after_s >= 0:
        return {"retry-after": str(math.ceil(exc.retry_after_s))}
    return {}


def error_response(status: int, error_type: str, message: str,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error answer of ``laneway serve``'s own: the API's, under a fresh request id."""
    return api_error(status, error_type, message, headers=headers)


def response_of(exc: BaseException) -> JSONResponse:
    """The answer to ``exc``: an :class:`HTTPError`, a ``LanewayError``, or a bug (500)."""
    if isinstance(exc, HTTPError):
        return error_response(exc.status, exc.error_type, exc.message)
    status = status_of(exc) if isinstance(exc, LanewayError) else 500
    return error_response(status, type_of(exc), message_of(exc), headers=headers_of(exc))


#: What Starlette's router raises when no route serves a request.
_NO_ROUTE = frozenset({(404, "Not Found"), (405, "Method Not Allowed")})


def add_error_handlers(app: FastAPI) -> None:
    """Answer every failure of ``app``'s routes in the API's error shape."""

    @app.exception_handler(HTTPError)
    @app.exception_handler(LanewayError)
    async def _known(_request: Request, exc: Exception) -> Response:
        return response_of(exc)

    @app.exception_handler(APIError)
    async def _api(_request: Request, exc: Exception) -> Response:
        # The wire's own (a body too large): as the API says it.
        return gateway_answer(cast(APIError, exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'body'}: {e.get('msg', '')}"
            for e in exc.errors())
        return error_response(422, "invalid_request_error", problems or "invalid request")

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        if (exc.status_code, exc.detail) in _NO_ROUTE:  # the router's: no route serves it
            # The API's answer (an SDK's call of an API laneway does not serve gets it
            # as straight from the API), with a request id, in the local API's words.
            return gateway_answer(no_route(request.method, request.url.path,
                                           method_not_allowed=exc.status_code == 405))
        return error_response(exc.status_code, error_type_for(exc.status_code), str(exc.detail),
                              headers=exc.headers)

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> Response:
        return response_of(exc)  # a 500 that says nothing of laneway's insides


__all__ = ["STATUS", "HTTPError", "add_error_handlers", "body_of", "error_response",
           "headers_of", "response_of", "status_of"]
