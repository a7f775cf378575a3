"""Who may talk to ``laneway serve``: loopback by default, a bearer token otherwise.

- Binding to an address other than loopback requires a token (:func:`check_bind`
  refuses to start without one).
- With a token, every request (pages, static files, the API, event streams) must carry
  it: ``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` for what a browser loads by
  URL (the pages, their scripts, ``EventSource``); ``/healthz`` alone is answered
  without it (for load balancers; it says nothing but ``ok``). The gateway's routes
  (the Anthropic API: ``/v1/messages``, ``/v1/models``, ...) are the exception: their
  clients are SDKs that send an API key, so the gateway's own chain requires a laneway
  key (or the token) there, before it reads a body. A ``Host`` header never grants
  anything: a request with the token (or a key) is answered whatever name it used (the
  machine's address, a reverse proxy's name).
- Without a token (loopback only), the socket's peer must be a loopback address, and
  requests must name a loopback ``Host``, so a web page elsewhere cannot reach the
  server through DNS rebinding; an address literal must also be of the family the
  server listens on (``[::1]`` is not an IPv4 server's name). These rules are
  :func:`laneway.server.gateway.intake.access_refusal`'s.

Every refusal is the API's error shape with a request id (header and body alike).
"""

from __future__ import annotations

import hmac
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from laneway.errors import ConfigError
from laneway.server.gateway.intake import access_refusal
from laneway.server.gateway.loop import is_loopback
from laneway.wire.errors import api_error


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (one line, for the CLI)."""
    if token is not None and not token.strip():
        raise ConfigError("--token: the token is empty")
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host}: not a loopback address, so anyone who can reach it could use "
            "your API key; pass --token SECRET (or set LANEWAY_SERVE_TOKEN) to require it")


def token_of(scope: Scope) -> str | None:
    """The token a request carries, from its ``Authorization`` header or ``?token=``."""
    auth = Headers(scope=scope).get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    values = query.get("token")
    return values[0] if values else None


#: The Anthropic API's routes on this server: their clients send a laneway key (or the
#: token) as their API key, checked by the gateway itself (``gateway.clients``).
_GATEWAY_PATHS = ("/v1/messages", "/v1/messages/batches", "/v1/models")


#: Answered without the token: a load balancer's health check (it tells nothing).
OPEN_PATHS = frozenset({"/healthz"})


def is_gateway_path(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in _GATEWAY_PATHS)


def token_ok(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenAuth:
    """ASGI middleware applying the rules of the module docstring to every request.

    A plain ASGI middleware (not ``BaseHTTPMiddleware``), so streamed responses pass
    through untouched and a client's disconnect still reaches the route.
    """

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket" and not self._allowed(scope):
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path", "")
        if is_gateway_path(path):  # the gateway's own chain checks them (key or token)
            await self.app(scope, receive, send)
            return
        if self.token is not None and path not in OPEN_PATHS \
                and not token_ok(token_of(scope), self.token):
            await _deny(scope, receive, send, 401, "authentication_error",
                        "a token is required: send 'Authorization: Bearer TOKEN' "
                        "or add ?token=TOKEN to the URL")
            return
        refusal = access_refusal(scope, token=self.token)
        if refusal is not None:
            await _deny(scope, receive, send, refusal.status, refusal.error_type,
                        refusal.message)
            return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        if self.token is not None:
            return token_ok(token_of(scope), self.token)
        return access_refusal(scope, token=None) is None


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, error_type: str,
                message: str) -> None:
    headers = {"www-authenticate": 'Bearer realm="laneway"'} if status == 401 else None
    await api_error(status, error_type, message, headers=headers)(scope, receive, send)
