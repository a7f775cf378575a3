"""The Anthropic API's errors on the wire: error bodies and the status of each type."""

from __future__ import annotations

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
