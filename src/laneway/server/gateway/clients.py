"""Who sent a gateway request, and whether its key may send it now.

A client sends its laneway key (``laneway keys create``) where the SDKs put an API key
(``x-api-key``, or ``Authorization: Bearer``). The ledger keeps only the key's hash;
the lookup compares hashes in constant time. Off loopback (or with ``--token``) every
request needs a key (or the token); on loopback a request without one is the anonymous
``local`` client, which has no budget and no rate (``serve --no-anonymous`` refuses it
once any key exists); a laneway key that is unknown or revoked is refused all the same.

Every request reads its key from the ledger (:meth:`KeyLedger.check_key
<laneway.store.keys.KeyLedger.check_key>`): a revoke, a new budget or rate take effect
on the key's next request, in every process. The same call counts the request against
the key's rate (its last ``rpm`` send times, kept in its row): refused with 429 and the
exact ``retry-after``. Its budget is held later, once the body is read
(:mod:`.pipeline`).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable, Mapping

from laneway.store import AsyncStore
from laneway.store.keys import KEY_PREFIX, ClientKey


class Refusal(Exception):
    """An answer the gateway gives instead of relaying: status, API error type, why."""

    def __init__(self, status: int, error_type: str, message: str,
                 headers: dict[str, str] | None = None, *, key: ClientKey | None = None
                 ) -> None:
        super().__init__(message)
        #: The request's key, when it was known before the refusal.
        self.key = key
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = headers


def secret_of(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


_NEEDS_KEY = ("this gateway needs a laneway key as the API key (ANTHROPIC_API_KEY=lw_...; "
              "create one with 'laneway keys create NAME')")


class Clients:
    def __init__(self, astore_of: Callable[[], AsyncStore], *, require_key: bool,
                 token: str | None = None, anonymous: bool = True) -> None:
        #: Gives the app's ledger (it is opened when the app starts).
        self._astore_of = astore_of
        self.require_key = require_key
        #: ``laneway serve --token``: accepted as an API key too (the operator's own).
        self.token = token
        #: False (``serve --no-anonymous``): a request without a key is refused once
        #: the ledger has any key.
        self.anonymous = anonymous
        self._keys_exist = False

    @property
    def astore(self) -> AsyncStore:
        return self._astore_of()

    async def identify(self, headers: Mapping[str, str], *, rate: bool = True
                       ) -> ClientKey | None:
        """The request's key, ``None`` for the anonymous local client (or the operator's
        token); a :class:`Refusal` for a missing, unknown or revoked key (401), or a key
        over its rate (429; with ``rate`` the request counts against it)."""
        secret = secret_of(headers)
        if secret and self.token and hmac.compare_digest(secret.encode(), self.token.encode()):
            return None
        if not secret or not secret.startswith(KEY_PREFIX):
            if self.require_key:
                raise Refusal(401, "authentication_error", _NEEDS_KEY)
            if not self.anonymous and await self._any_key():
                raise Refusal(401, "authentication_error", _NEEDS_KEY + ": this gateway "
                              "refuses anonymous clients (serve --no-anonymous)")
            return None
        if rate:
            key, wait_s = await self.astore.check_key(secret)
        else:
            key, wait_s = await self.astore.find_key(secret), None
        if key is None:
            raise Refusal(401, "authentication_error",
                          "invalid laneway key (unknown or revoked)")
        if wait_s is not None:
            raise Refusal(429, "rate_limit_error",
                          f"laneway key {key.name!r} is limited to {key.rpm} requests "
                          "per minute", {"retry-after": str(max(1, math.ceil(wait_s)))},
                          key=key)
        return key

    async def _any_key(self) -> bool:
        if not self._keys_exist:  # once a key exists, its row stays (revoked too)
            self._keys_exist = bool(await self.astore.list_keys(include_revoked=True))
        return self._keys_exist
