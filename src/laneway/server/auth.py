"""Who may talk to ``laneway serve``: loopback by default, a bearer token otherwise.

- Binding to an address other than loopback requires a token (:func:`check_bind`
  refuses to start without one).
- With a token, every request (pages, static files, the API, event streams) must carry
  it: ``Authorization: Bearer TOKEN``, or ``?token=TOKEN`` for what a browser loads by
  URL (the pages, their scripts, ``EventSource``). The gateway's routes (the Anthropic
  API: ``/v1/messages``, ``/v1/models``) are the exception: their clients are SDKs that
  send an API key, so the gateway itself requires a laneway key (or the token) there.
- Without a token (loopback only), requests must name a loopback ``Host``, so a web
  page elsewhere cannot reach the server through DNS rebinding; an address literal must
  also be of the family the server listens on (``[::1]`` is not an IPv4 server's name).
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import parse_qs

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from laneway.errors import ConfigError
from laneway.server.errors import send_error
from laneway.server.gateway.loop import is_loopback


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token (one line, for the CLI)."""
    if token is not None and not token.strip():
        raise ConfigError("--token: the token is empty")
    if not is_loopback(host) and not token:
        raise ConfigError(
            f"--host {host}: not a loopback address, so anyone who can reach it could use "
            "your API key; pass --token SECRET (or set LANEWAY_SERVE_TOKEN) to require it")


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):  # [::1]:8000
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def host_ok(scope: Scope) -> bool:
    """The request's ``Host`` names this loopback server: a loopback name, and an address
    of the family of the socket it came in on (``[::1]`` on 127.0.0.1 is refused)."""
    host = Headers(scope=scope).get("host", "")
    if not host:
        return True
    name = _host_name(host)
    if not is_loopback(name):
        return False
    server = scope.get("server")
    try:
        given = ipaddress.ip_address(name.strip().strip("[]"))
        bound = ipaddress.ip_address(server[0]) if server else None
    except ValueError:
        return True  # a name (localhost), or a socket that is not an IP one
    if isinstance(bound, ipaddress.IPv6Address) and bound.ipv4_mapped is not None:
        bound = bound.ipv4_mapped
    return bound is None or given.version == bound.version


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
        if self.token is not None and not is_gateway_path(scope.get("path", "")):
            if not token_ok(token_of(scope), self.token):
                await _deny(send, 401, "authentication_error",
                            "a token is required: send 'Authorization: Bearer TOKEN' "
                            "or add ?token=TOKEN to the URL")
                return
        else:
            if not host_ok(scope):
                host = Headers(scope=scope).get("host", "")
                await _deny(send, 400, "invalid_request_error",
                            f"Host {host!r} is not this server's loopback name (this server "
                            "has no token, so it answers loopback requests only)")
                return
        await self.app(scope, receive, send)

    def _allowed(self, scope: Scope) -> bool:
        if self.token is not None:
            return token_ok(token_of(scope), self.token)
        return host_ok(scope)


async def _deny(send: Send, status: int, error_type: str, message: str) -> None:
    headers = {"www-authenticate": 'Bearer realm="laneway"'} if status == 401 else None
    await send_error(send, status, error_type, message, headers)
