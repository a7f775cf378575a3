"""HTTP plumbing of the local API: a ``request-id`` and the rate-limit headers on every
answer, and the API's error body (not FastAPI's) for every failure."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from laneway.local.ratelimit import RateLimiter
from laneway.wire.errors import APIError, error_response, no_route
from laneway.wire.ids import new_id


class RequestIdMiddleware:
    """Gives every request a ``request-id`` (in ``request.state`` and the response headers),
    and every response the ``anthropic-ratelimit-*`` headers when limits are set.

    A plain ASGI middleware, not ``@app.middleware``: that one wraps streamed bodies and
    would finish a response cleanly that a fault means to cut.
    """

    def __init__(self, app: ASGIApp, *, limits: RateLimiter | None = None) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "request-id" not in headers:
                    headers["request-id"] = request_id
                # The API sends them on every response, not only on /v1/messages.
                if self.limits is not None:
                    for name, value in self.limits.headers().items():
                        if name not in headers:
                            headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_id)


def add_error_handlers(app: FastAPI, limits: RateLimiter) -> None:
    """Answer every failure with the API's error body (and the rate-limit headers)."""

    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> Response:
        for name, value in limits.headers().items():
            exc.headers.setdefault(name, value)
        return error_response(exc, request.state.request_id)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        rid = getattr(request.state, "request_id", new_id("req"))
        err = no_route(request.method, request.url.path,
                       method_not_allowed=exc.status_code == 405)
        return error_response(err, rid)

    @app.exception_handler(RequestValidationError)
    async def _query_error(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI would answer 422 with its own body; the API answers 400 and names the field.
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'request'}: {e.get('msg', '')}"
            for e in exc.errors()
        ]
        err = APIError("invalid_request_error", "; ".join(problems) or "invalid request")
        return error_response(err, request.state.request_id)

    @app.exception_handler(Exception)
    async def _internal_error(request: Request, exc: Exception) -> Response:
        # Runs outside the request-id middleware (Starlette calls it from its outermost
        # layer), so it sets the headers itself.
        rid = getattr(request.state, "request_id", None) or new_id("req")
        err = APIError("api_error", "Internal server error", headers=limits.headers())
        return error_response(err, rid)
