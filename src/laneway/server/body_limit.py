"""How large a request body may be: 413 before the server holds more than that.

JSON requests (a chat turn, a cancel) may carry :data:`JSON_LIMIT` bytes; a run's input
(``POST /v1/runs``, raw or as a form) :data:`UPLOAD_LIMIT`; a Messages request through
the gateway the API's own :data:`MESSAGES_LIMIT` and a Message Batch its
:data:`BATCHES_LIMIT`, both refused in the API's own error shape. A declared
``Content-Length`` over the limit is answered at once; a body without one (chunked) is
counted as it arrives, and the answer goes out as soon as it passes the limit: the
route sees the client as gone and stops, and the rest is never kept.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from laneway.server.errors import send_error
from laneway.wire.batches import BATCH_MAX_BYTES
from laneway.wire.errors import MESSAGES_MAX_BYTES, gateway_answer, too_large

JSON_LIMIT = 8 * 1024 * 1024
#: The runs route's own limit on the JSONL (256 MiB), plus room for a form's framing.
UPLOAD_LIMIT = 257 * 1024 * 1024
_UPLOAD_ROUTES = frozenset({("POST", "/v1/runs")})
#: The Messages API's own limit, for the gateway's relayed requests (32 MB).
MESSAGES_LIMIT = MESSAGES_MAX_BYTES
_MESSAGES_ROUTES = frozenset({("POST", "/v1/messages"), ("POST", "/v1/messages/count_tokens")})
#: The Message Batches API's own limit on a create (256 MB).
BATCHES_LIMIT = BATCH_MAX_BYTES
_BATCHES_ROUTES = frozenset({("POST", "/v1/messages/batches")})


def _route(scope: Scope) -> tuple[str | None, str]:
    return scope.get("method"), scope.get("path", "").rstrip("/") or "/"


def limit_for(scope: Scope) -> int:
    route = _route(scope)
    if route in _UPLOAD_ROUTES:
        return UPLOAD_LIMIT
    if route in _BATCHES_ROUTES:
        return BATCHES_LIMIT
    return MESSAGES_LIMIT if route in _MESSAGES_ROUTES else JSON_LIMIT


class BodyLimit:
    """ASGI middleware enforcing :func:`limit_for` while the body streams in."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _too_large(send, scope, limit)
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
                        await _too_large(send, scope, limit)
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


async def _nothing() -> Message:
    return {"type": "http.disconnect"}


async def _too_large(send: Send, scope: Scope, limit: int) -> None:
    if _route(scope) in _MESSAGES_ROUTES | _BATCHES_ROUTES:  # the API's routes: as it
        # answers (with a request id, in the local API's words too)
        await gateway_answer(too_large(limit))(scope, _nothing, send)
        return
    await send_error(send, 413, "request_too_large", (
        f"the request body is larger than {limit} bytes ({limit // (1024 * 1024)} MiB), "
        "the limit of this route"))
