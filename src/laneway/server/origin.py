"""Cross-site requests cannot change anything: no page elsewhere starts or cancels a run.

A browser sends some requests to any server without asking first (no CORS preflight):
``POST`` with a ``text/plain``, ``multipart/form-data`` or form-encoded body, or with
none. So a page on any site could start a paid run, or cancel one, on a laneway server
the user runs on loopback. :class:`SameOrigin` refuses, with 403, a state-changing
request (``POST PUT PATCH DELETE``) that carries no valid token and

- has ``Sec-Fetch-Site`` other than ``same-origin`` (``same-site`` is another port or
  subdomain: refused). The browser sets it, so when present it decides alone;
- else has an ``Origin`` (or, without one, a ``Referer``) that is not this server's own
  (scheme, ``Host`` and port), ``Origin: null`` included;
- else has none of them, a simple body (or none), and a browser's ``Sec-Fetch-Mode``
  or ``Mozilla/`` user agent: a browser that does not say where the request comes from.

Every browser in use sends ``Origin`` on a cross-origin ``POST``, so a request with no
``Origin``, ``Referer`` or ``Sec-Fetch-*`` header and a program's user agent (curl -F,
the SDK, a script) is answered. JSON and JSONL bodies need a preflight across origins,
which this server (no CORS headers) never grants. The server's own pages send
``Sec-Fetch-Site: same-origin`` (or their own ``Origin``), so they are answered.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from laneway.server.auth import token_of, token_ok
from laneway.wire.errors import api_error

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Bodies a browser sends across origins without a preflight (and an absent one).
SIMPLE_TYPES = frozenset({"", "text/plain", "multipart/form-data",
                          "application/x-www-form-urlencoded"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> str | None:
    """``scheme://host:port`` of a URL, lower-cased, the port always written; ``None``
    when it has no host (``null``, ``file:``, garbage)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or scheme not in _DEFAULT_PORTS:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port or _DEFAULT_PORTS[scheme]}"


def own_origin(scope: Scope) -> str | None:
    """This server's origin as the client named it (scheme and ``Host``)."""
    host = Headers(scope=scope).get("host", "")
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return _origin_of(f"{scheme}://{host}") if host else None


def refusal(scope: Scope, *, token: str | None) -> str | None:
    """Why the request must be refused as cross-site, or ``None`` to answer it."""
    if scope.get("method", "GET") not in UNSAFE_METHODS:
        return None
    if token is not None and token_ok(token_of(scope), token):
        return None  # a page elsewhere cannot know the token
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site", "").strip().lower()
    if site:  # set by the browser itself, so it decides when present
        if site not in ("same-origin", "none"):  # none: the user typed or bookmarked it
            return f"Sec-Fetch-Site: {site}"
        return None
    origin_header = headers.get("origin")
    claimed = origin_header if origin_header is not None else headers.get("referer")
    if claimed is not None:
        if _origin_of(claimed) is None or _origin_of(claimed) != own_origin(scope):
            return f"{'Origin' if origin_header is not None else 'Referer'} {claimed!r}"
        return None
    ctype = headers.get("content-type", "").split(";")[0].strip().lower()
    from_browser = bool(headers.get("sec-fetch-mode")
                        or headers.get("user-agent", "").startswith("Mozilla/"))
    if ctype in SIMPLE_TYPES and from_browser:
        return "a browser request that does not say where it comes from"
    return None


class SameOrigin:
    """ASGI middleware applying :func:`refusal` (a plain one: streams pass untouched)."""

    def __init__(self, app: ASGIApp, *, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        why = refusal(scope, token=self.token) if scope["type"] == "http" else None
        if why is None:
            await self.app(scope, receive, send)
            return
        await cross_site(why)(scope, receive, send)


def cross_site(why: str) -> Response:
    """The answer to a request :func:`refusal` refuses."""
    return api_error(403, "permission_error", (
        f"cross-site request refused ({why}): this server changes state only for its "
        "own pages, requests with a token, and programs sending JSON or JSONL"))
