"""How large a request body may be: 413 before the server holds more than that.

JSON requests (a chat turn, a cancel) may carry :data:`JSON_LIMIT` bytes; a run's input
(``POST /v1/runs``, raw or as a form) :data:`UPLOAD_LIMIT`. A declared
``Content-Length`` over the limit is answered at once; a body without one (chunked) is
counted as it arrives, and the answer goes out as soon as it passes the limit: the
route sees the client as gone and stops, and the rest is never kept. The gateway's
routes read their bodies themselves, with the API's limits and read timeouts
(:func:`laneway.server.gateway.intake.read_body`), once the key is known.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from laneway.server.auth import is_gateway_path
from laneway.wire.errors import gateway_answer, too_large

JSON_LIMIT = 8 * 1024 * 1024
#: The runs route's own limit on the JSONL (256 MiB), plus room for a form's framing.
UPLOAD_LIMIT = 257 * 1024 * 1024
_UPLOAD_ROUTES = frozenset({("POST", "/v1/runs")})


def _route(scope: Scope) -> tuple[str | None, str]:
    return scope.get("method"), scope.get("path", "").rstrip("/") or "/"


def limit_for(scope: Scope) -> int:
    return UPLOAD_LIMIT if _route(scope) in _UPLOAD_ROUTES else JSON_LIMIT


class BodyLimit:
    """ASGI middleware enforcing :func:`limit_for` while the body streams in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_gateway_path(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(scope, receive, send, limit)
            return
        received = 0
        answered = False  # the 413 went out: the app's own answer is dropped
        started = False

        async def counted_receive() -> Message:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:
                        await _too_large(scope, receive, send, limit)
                        answered = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not answered:  # the route's failure to read a body cut short: answered
                raise


async def _too_large(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await gateway_answer(too_large(limit))(scope, receive, send)
