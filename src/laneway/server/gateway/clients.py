"""Who sent a gateway request, and whether its key may spend more.

A client sends its laneway key (``laneway keys create``) where the SDKs put an API key
(``x-api-key``, or ``Authorization: Bearer``). The ledger keeps only the key's hash;
the lookup compares hashes in constant time. Off loopback every request needs a key; on
loopback a request without one (any other value, e.g. a placeholder the SDK insists on)
is the anonymous ``local`` client, and a laneway key that is unknown or revoked is
refused all the same.

A key may carry a budget (USD, refused with 403 ``permission_error`` once what it has
spent plus the worst case of what it has in flight would pass it), a rate (requests per
minute, refused with 429 and an exact ``retry-after``) and a lane (forced on its
requests). Validated keys are remembered for :data:`KEY_TTL_S`, so a revoke takes
effect within that time without a ledger read per request.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from laneway.store import AsyncStore
from laneway.store.keys import KEY_PREFIX, ClientKey

KEY_TTL_S = 5.0


class Refusal(Exception):
    """An answer the gateway gives instead of relaying: status, API error type, why."""

    def __init__(self, status: int, error_type: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers


@dataclass
class _Seen:
    key: ClientKey
    checked_at: float
    spent_usd: float
    in_flight_usd: float = 0.0
    sent: deque[float] = field(default_factory=deque)


def secret_of(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


class Clients:
    def __init__(self, astore_of: Callable[[], AsyncStore], *, require_key: bool,
                 token: str | None = None) -> None:
        #: Gives the app's ledger (it is opened when the app starts).
        self._astore_of = astore_of
        self.require_key = require_key
        #: ``laneway serve --token``: accepted as an API key too (the operator's own).
        self.token = token
        #: Keys checked lately, by their hash; the same records by key id.
        self._seen: dict[str, _Seen] = {}
        self._by_id: dict[str, _Seen] = {}

    @property
    def astore(self) -> AsyncStore:
        return self._astore_of()

    async def identify(self, headers: Mapping[str, str]) -> ClientKey | None:
        """The request's key, ``None`` for the anonymous local client; or a
        :class:`Refusal` (401)."""
        secret = secret_of(headers)
        if secret and self.token and hmac.compare_digest(secret.encode(), self.token.encode()):
            return None
        if not secret or not secret.startswith(KEY_PREFIX):
            if self.require_key:
                raise Refusal(401, "authentication_error",
                              "this gateway needs a laneway key as the API key "
                              "(ANTHROPIC_API_KEY=lw_...; create one with "
                              "'laneway keys create NAME')")
            return None
        digest = hashlib.sha256(secret.encode()).hexdigest()
        seen = self._seen.get(digest)
        now = time.monotonic()
        if seen is None or now - seen.checked_at > KEY_TTL_S:
            key = await self.astore.find_key(secret)
            if key is None:
                self._seen.pop(digest, None)
                raise Refusal(401, "authentication_error",
                              "invalid laneway key (unknown or revoked)")
            if seen is None:
                seen = _Seen(key, now, await self.astore.spent_usd(key.id))
                self._seen[digest] = self._by_id[key.id] = seen
            else:  # checked again: the key as the ledger has it now (a new budget...)
                seen.key, seen.checked_at = key, now
        return seen.key

    def admit(self, key: ClientKey | None, worst_usd: float) -> None:
        """Hold ``worst_usd`` against the key's budget and count the request against its
        rate, or raise a :class:`Refusal` (403 spent budget, 429 over its rate)."""
        if key is None:
            return
        seen = self._by_id[key.id]
        if key.budget_usd is not None and \
                seen.spent_usd + seen.in_flight_usd + worst_usd > key.budget_usd:
            raise Refusal(403, "permission_error",
                          f"laneway key {key.name!r} has spent ${seen.spent_usd:.4f} of its "
                          f"${key.budget_usd:.2f} budget (${seen.in_flight_usd:.4f} more in "
                          f"flight; this request could cost ${worst_usd:.4f})")
        if key.rpm is not None:
            now = time.monotonic()
            while seen.sent and now - seen.sent[0] >= 60.0:
                seen.sent.popleft()
            if len(seen.sent) >= key.rpm:
                wait = 60.0 - (now - seen.sent[0])
                raise Refusal(429, "rate_limit_error",
                              f"laneway key {key.name!r} is limited to {key.rpm} requests "
                              "per minute", {"retry-after": str(max(1, math.ceil(wait)))})
            seen.sent.append(now)
        seen.in_flight_usd += worst_usd

    def settle(self, key_id: str | None, worst_usd: float, cost_usd: float | None) -> None:
        """A request of the key ended: release its worst case, count what it cost."""
        seen = self._by_id.get(key_id) if key_id is not None else None
        if seen is not None:
            seen.in_flight_usd = max(0.0, seen.in_flight_usd - worst_usd)
            seen.spent_usd += cost_usd or 0.0
