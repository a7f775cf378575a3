"""A gateway must not be its own upstream.

The easy mistake: ``export ANTHROPIC_BASE_URL=http://127.0.0.1:8000`` for the apps, then
``laneway serve`` from the same shell, which takes that variable as its upstream. It is
refused at start (:func:`check_upstream`), and any other loop (two gateways pointed at
each other) is answered 508 Loop Detected: each gateway names itself in a ``laneway-via``
header on what it sends upstream and refuses a request that carries its own name.

Both need to know the addresses that are this host's own (:func:`is_loopback`), as does
the server's rule that only loopback may connect without a token
(:mod:`laneway.server.auth`).
"""

from __future__ import annotations

import functools
import ipaddress
import os
import secrets
from urllib.parse import urlsplit

from laneway.errors import ConfigError

VIA_HEADER = "laneway-via"
#: This process's name in ``laneway-via``.
INSTANCE = secrets.token_hex(6)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_upstream(host: str, port: int) -> None:
    """Refuse to start when ``ANTHROPIC_BASE_URL`` is this server's own address."""
    url = os.environ.get("ANTHROPIC_BASE_URL")
    if not url:
        return
    parts = urlsplit(url)
    target = parts.hostname or ""
    target_port = parts.port or (443 if parts.scheme == "https" else 80)
    same_host = target == host or (is_loopback(target) and (
        is_loopback(host) or host in ("0.0.0.0", "::")))
    if same_host and target_port == port:
        raise ConfigError(
            f"ANTHROPIC_BASE_URL={url} is this server itself, so the gateway would send "
            "every request to itself; unset it for 'laneway serve' (its upstream is then "
            "ANTHROPIC_API_KEY's real API, or the local model), or serve on another port")


def looped(via: str | None) -> bool:
    """True if a request has already passed through this gateway."""
    return bool(via) and INSTANCE in (via or "").replace(" ", "").split(",")


def via(previous: str | None) -> str:
    """The ``laneway-via`` value to send upstream."""
    return f"{previous}, {INSTANCE}" if previous else INSTANCE
