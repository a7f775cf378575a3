"""Which headers cross the gateway, each way.

A client's headers go upstream as they came (``anthropic-version``, ``anthropic-beta``,
anything newer than this code) except the ones that belong to one connection, the
client's credentials (the gateway sends its own upstream key; a client's key is a
laneway key, checked here and never forwarded) and laneway's own ``laneway-*`` headers.
The upstream's headers come back the same way (``request-id``, the
``anthropic-ratelimit-*`` family, ``retry-after``), less the per-connection ones and
those the gateway's HTTP server writes itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

#: Headers of one HTTP connection (RFC 9110 7.6.1) and of the body's framing.
_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
    "upgrade", "content-length", "host", "expect",
})
#: The client's credentials and transport preferences: the SDK sets its own.
_CLIENT_ONLY = frozenset({"x-api-key", "authorization", "accept-encoding", "cookie",
                          "origin", "referer"})
#: Written by the gateway's own server, or no longer true once httpx decoded the body.
_UPSTREAM_ONLY = frozenset({"content-encoding", "date", "server", "set-cookie", "via"})


def upstream_headers(client: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The client's headers to send upstream."""
    out: dict[str, str] = {}
    for name, value in client:
        low = name.lower()
        if low in _HOP or low in _CLIENT_ONLY or low.startswith(("laneway-", "sec-")):
            continue
        out[low] = value
    return out


def client_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The upstream's response headers to send back to the client."""
    return {name: value for name, value in upstream.items()
            if name.lower() not in _HOP and name.lower() not in _UPSTREAM_ONLY}
