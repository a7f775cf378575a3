"""The gateway's client keys, mixed into the store: create, list, revoke, find.

A client of ``laneway serve`` sends its key as its API key (``ANTHROPIC_API_KEY``).
The ledger keeps only the key's SHA-256 and its first :data:`PREFIX_LEN` characters:
the prefix finds the row (and names the key in lists), the hash proves the rest,
compared in constant time. A key is shown once, when it is made
(:meth:`KeyLedger.create_key`); a revoked key keeps its row, so the traffic it had
keeps its name. Keys are random (256 bits), so a plain hash is enough: there is
nothing to guess that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.exc import IntegrityError

from laneway.errors import ConfigError
from laneway.store import schema as S

#: Every key starts so: a glance tells a laneway key from a provider's.
KEY_PREFIX = "lw_"
#: How many of a key's first characters are stored in the clear (``lw_`` and 9 more).
PREFIX_LEN = 12
#: The lanes a key may be put in: the values of the governor's
#: :class:`~laneway.governor.buckets.Lane`, kept by name (the ledger does not import the
#: governor; the gateway turns the name into a lane).
LANES = ("interactive", "background")

_K = S.gateway_keys.c
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


@dataclass(frozen=True, slots=True)
class ClientKey:
    """One client key, as the ledger knows it (never the key itself)."""

    id: str
    name: str
    #: The key's first 12 characters, shown in lists.
    prefix: str
    budget_usd: float | None
    rpm: int | None
    #: The lane every request of this key goes in; None: chosen per request.
    lane: str | None
    created_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        """Not revoked: requests with it are let in."""
        return self.revoked_at is None


def new_secret() -> str:
    """A new random key: ``lw_`` and 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 (hex) of ``secret``, as the ledger stores it."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _key(row: Any) -> ClientKey:
    return ClientKey(
        id=row["id"], name=row["name"], prefix=row["prefix"], budget_usd=row["budget_usd"],
        rpm=row["rpm"], lane=row["lane"] or None,
        created_at=float(row["created_at"]), revoked_at=row["revoked_at"])


def _check(name: str, budget_usd: float | None, rpm: int | None, lane: str | None
           ) -> str | None:
    """The key's settings, checked: a :class:`ConfigError` naming the first bad one."""
    if not _NAME.fullmatch(name) or name.startswith(KEY_PREFIX):
        raise ConfigError(f"key name {name!r}: use 1-100 letters, digits and . _ @ - "
                          f"(starting with a letter or digit, not {KEY_PREFIX!r})")
    if budget_usd is not None and not (math.isfinite(budget_usd) and budget_usd > 0):
        raise ConfigError(f"budget {budget_usd!r}: a budget must be more than 0 USD")
    if rpm is not None and rpm < 1:
        raise ConfigError(f"rpm {rpm!r}: give a number of requests per minute, 1 or more")
    if lane is None:
        return None
    if lane not in LANES:
        raise ConfigError(f"lane {lane!r}: choose {' or '.join(LANES)}")
    return lane


class KeyLedger:
    """Client keys of the gateway; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine

    def create_key(self, name: str, *, budget_usd: float | None = None,
                   rpm: int | None = None, lane: str | None = None
                   ) -> tuple[ClientKey, str]:
        """A new key named ``name``; returns it and the key itself (shown this once).

        A name already taken (by a revoked key too), a bad name, a negative budget, an
        rpm under 1 or a lane that is not one raise :class:`ConfigError`.
        """
        lane_ = _check(name, budget_usd, rpm, lane)
        secret = new_secret()
        key = ClientKey(id="key_" + secrets.token_hex(8), name=name,
                        prefix=secret[:PREFIX_LEN], budget_usd=budget_usd, rpm=rpm,
                        lane=lane_, created_at=time.time(), revoked_at=None)
        try:
            with self.engine.begin() as conn:
                conn.execute(S.gateway_keys.insert().values(
                    id=key.id, name=key.name, prefix=key.prefix, key_hash=hash_secret(secret),
                    budget_usd=budget_usd, rpm=rpm, lane=lane_, created_at=key.created_at,
                    revoked_at=None))
        except IntegrityError:
            raise ConfigError(f"a key named {name!r} already exists (revoked keys keep "
                              "their names): choose another name") from None
        return key, secret

    def list_keys(self, include_revoked: bool = False) -> list[ClientKey]:
        """The keys, oldest first; revoked ones only if ``include_revoked``."""
        q = select(S.gateway_keys).order_by(_K.created_at, _K.name)
        if not include_revoked:
            q = q.where(_K.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(r) for r in conn.execute(q).mappings()]

    def revoke_key(self, name_or_prefix: str) -> ClientKey:
        """Revoke the key with this name, prefix (or whole value); returns it revoked.

        Revoking a revoked key changes nothing. An unknown name, or a prefix two keys
        share, raises :class:`ConfigError`.
        """
        key = self._named(name_or_prefix)
        if key.active:
            with self.engine.begin() as conn:
                conn.execute(update(S.gateway_keys).where(
                    _K.id == key.id, _K.revoked_at.is_(None)).values(revoked_at=time.time()))
            key = self._named(key.name)
        return key

    def find_key(self, secret: str) -> ClientKey | None:
        """The active key whose value is ``secret``; None for anything else (an unknown
        or revoked key, or no laneway key at all)."""
        if not secret.startswith(KEY_PREFIX) or len(secret) <= PREFIX_LEN:
            return None
        given = hash_secret(secret)
        q = select(S.gateway_keys).where(_K.prefix == secret[:PREFIX_LEN])
        with self.engine.connect() as conn:
            rows = list(conn.execute(q).mappings())
        found = None
        for row in rows:  # one, unless two keys share a prefix (one chance in 2^54)
            if hmac.compare_digest(given, row["key_hash"]):
                found = row
        return _key(found) if found is not None and found["revoked_at"] is None else None

    def _named(self, ref: str) -> ClientKey:
        if ref.startswith(KEY_PREFIX) and len(ref) > PREFIX_LEN:
            q = select(S.gateway_keys).where(_K.key_hash == hash_secret(ref))
        else:
            q = select(S.gateway_keys).where((_K.name == ref) | (_K.prefix == ref))
        with self.engine.connect() as conn:
            rows = list(conn.execute(q).mappings())
        if len(rows) > 1:
            names = ", ".join(sorted(r["name"] for r in rows))
            raise ConfigError(f"{ref!r} names more than one key ({names}): use the name")
        if not rows:
            raise ConfigError(f"no key named {ref!r} (see `laneway keys list --all`)")
        return _key(rows[0])
