"""What the gateway takes in from a client before anything is decided: where the
request may come from (the token and ``Host`` rules), its body (read with a size limit
and read timeouts) and its JSON (content type, depth and width checked, parsed off the
event loop when large).

Each step is a function the admission chain calls in order (credentials, key, then
:func:`check_access`, the key's rate, then :func:`read_body` and :func:`parse_json`),
and each refuses with a :class:`~laneway.server.gateway.clients.Refusal` in the API's
words (answered by :func:`~laneway.wire.errors.api_error`, a request id in header and
body), never a 500:

=====================================  ======  ==========================================
refusal                                status  when
=====================================  ======  ==========================================
not from loopback                      403     no ``--token``: the socket's peer is not a
                                               loopback address
``Host`` not a loopback name           400     no ``--token``: DNS rebinding (a page
                                               elsewhere naming this server)
body too large                         413     past the route's limit (the API's 32 MB,
                                               256 MB for a batch's create)
body too slow                          408     no byte for :attr:`IntakeLimits.idle_s`, or
                                               not all of it in :attr:`~IntakeLimits.total_s`
not JSON                               415     a ``content-type`` other than JSON
                                               (multipart, a form)
bad JSON                               400     not JSON, not an object, nested deeper than
                                               :attr:`~IntakeLimits.max_depth` or holding
                                               more than :attr:`~IntakeLimits.max_values`
                                               (counted before it is parsed: a body of
                                               millions of tiny values is never built)
=====================================  ======  ==========================================

With ``--token`` a ``Host`` header grants nothing and refuses nothing: the key (or the
token) is what lets a request in, so the gateway answers through the machine's own
address and behind a reverse proxy, whatever name the client used.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.types import Scope

from laneway.server.gateway.clients import Refusal
from laneway.server.gateway.exchange import CLIENT_CLOSED
from laneway.server.gateway.loop import is_loopback
from laneway.wire import body as wire_body
from laneway.wire.errors import APIError, unparsable


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    """How long a body may take to arrive, and what its JSON may hold."""

    #: The longest pause between two pieces of a body.
    idle_s: float = 10.0
    #: The whole body (32 MB at 1 MB/s takes 32 s).
    total_s: float = 120.0
    #: Arrays and objects inside each other (tool schemas nest a few dozen deep).
    max_depth: int = 128
    #: Values in the whole document (a 32 MB array of zeros would be 16 million).
    max_values: int = 2_000_000
    #: Bodies larger than this are parsed in a worker thread.
    thread_above: int = 256 * 1024


# -- the token and Host rules --------------------------------------------------------------

def host_name(host_header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``)."""
    if host_header.startswith("["):  # [::1]:8000
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


def host_ok(scope: Scope) -> bool:
    """The request's ``Host`` names this loopback server: a loopback name, and an address
    of the family of the socket it came in on (``[::1]`` on 127.0.0.1 is refused)."""
    host = Headers(scope=scope).get("host", "")
    if not host:
        return True
    name = host_name(host)
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


def peer_ok(scope: Scope) -> bool:
    """The socket's peer is a loopback address (a Unix socket's has none: local)."""
    client = scope.get("client")
    return not client or is_loopback(str(client[0]))


def access_refusal(scope: Scope, *, token: str | None) -> Refusal | None:
    """Why a request may not come from where it comes from (``None``: it may). With a
    token, nothing here: the token or a key decides. Without one (loopback only), the
    peer must be loopback and the ``Host`` a loopback name."""
    if token is not None:
        return None
    if not peer_ok(scope):
        return Refusal(403, "permission_error", "this server has no token, so it answers "
                       "loopback clients only (start it with --token to serve others)")
    if not host_ok(scope):
        host = Headers(scope=scope).get("host", "")
        return Refusal(400, "invalid_request_error", f"Host {host!r} is not this server's "
                       "loopback name (this server has no token, so it answers loopback "
                       "requests only)")
    return None


def check_access(scope: Scope, *, token: str | None) -> None:
    """:func:`access_refusal`, raised."""
    refusal = access_refusal(scope, token=token)
    if refusal is not None:
        raise refusal


# -- the body --------------------------------------------------------------------------

async def read_body(request: Request, *, limit: int, limits: IntakeLimits) -> bytes:
    """The request's body: at most ``limit`` bytes (413), no pause longer than
    ``limits.idle_s`` and all of it within ``limits.total_s`` (408); a client that
    leaves is a refusal of status :data:`~.exchange.CLIENT_CLOSED`."""
    try:
        return await wire_body.read_body(request, limit, idle_s=limits.idle_s,
                                         total_s=limits.total_s)
    except APIError as err:  # too large: in the API's words, as the local API says it
        raise Refusal(err.status, err.error_type, err.message) from None
    except wire_body.TooSlow:
        raise Refusal(408, "invalid_request_error", (
            f"the request body arrived too slowly (a pause over {limits.idle_s:g} s, "
            f"or more than {limits.total_s:g} s in all)")) from None
    except ClientDisconnect:  # nobody reads the answer; the request is counted as left
        raise Refusal(CLIENT_CLOSED, "invalid_request_error", "the client closed its "
                      "connection before its body arrived") from None


# -- its JSON --------------------------------------------------------------------------

def check_json_type(headers: Headers | Any) -> None:
    """A body the API reads must be JSON (or say nothing of its type): else 415."""
    declared = headers.get("content-type")
    if declared is None:
        return
    media = declared.split(";", 1)[0].strip().lower()
    if media == "application/json" or (media.startswith("application/")
                                       and media.endswith("+json")):
        return
    raise Refusal(415, "invalid_request_error", f"content-type {media or declared!r} is "
                  "not supported: send the body as application/json")


_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _too_many_values(data: bytes, limit: int) -> bool:
    """More than ``limit`` values: commas counted outside strings (the strings blanked
    first, only when the commas of the whole text are already too many)."""
    return data.count(b",") >= limit and _STRINGS.sub(b'""', data).count(b",") >= limit


def deepest(value: Any, limit: int) -> int:
    """How deep arrays and objects nest in a parsed JSON value (``limit + 1`` once it
    passes ``limit``), a level at a time. Python, not C: in a worker thread, the event
    loop still gets its turns."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level and depth <= limit:
        depth += 1
        level = [child for node in level
                 for child in (node.values() if isinstance(node, dict) else node)
                 if isinstance(child, dict | list)]
    return depth


def _parse(data: bytes, limits: IntakeLimits) -> dict[str, Any]:
    too_deep = Refusal(400, "invalid_request_error", "the body's JSON is nested deeper "
                       f"than {limits.max_depth} levels (arrays and objects)")
    if _too_many_values(data, limits.max_values):
        raise Refusal(400, "invalid_request_error", f"the body's JSON holds more than "
                      f"{limits.max_values} values")
    try:
        body = json.loads(data)
    except RecursionError:
        raise too_deep from None
    except ValueError as exc:  # in the API's words, as the local API's
        raise Refusal(400, "invalid_request_error", unparsable(exc).message) from None
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_request_error", "the body must be a JSON object")
    # Fewer brackets than the limit cannot nest deeper than it: no walk.
    if data.count(b"[") + data.count(b"{") > limits.max_depth and \
            deepest(body, limits.max_depth) > limits.max_depth:
        raise too_deep
    return body


async def parse_json(data: bytes, limits: IntakeLimits) -> dict[str, Any]:
    """The body as a JSON object (400 otherwise, with why); a large one is checked and
    parsed in a worker thread, so the event loop keeps serving other clients (but for
    the C parser's own time, which holds the GIL: ~40 ms for 32 MB of text, ~0.2-0.6 s
    for 32 MB of small objects)."""
    if len(data) <= limits.thread_above:
        return _parse(data, limits)
    return await anyio.to_thread.run_sync(_parse, data, limits)


async def read_json(request: Request, *, limit: int,
                    limits: IntakeLimits) -> tuple[bytes, dict[str, Any]]:
    """:func:`check_json_type`, :func:`read_body`, then :func:`parse_json`: the raw body
    (relayed as it came) and its object."""
    check_json_type(request.headers)
    content = await read_body(request, limit=limit, limits=limits)
    return content, await parse_json(content, limits)
