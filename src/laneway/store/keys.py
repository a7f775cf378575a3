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

from sqlalchemy import Engine, Float, bindparam, select, update
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
    #: What its settled requests cost, the worst cases of those in flight, and of those
    #: whose end was never seen (a crash; released by ``laneway keys settle``), in USD.
    spent_usd: float = 0.0
    reserved_usd: float = 0.0
    held_usd: float = 0.0

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
        created_at=float(row["created_at"]), revoked_at=row["revoked_at"],
        spent_usd=float(row["spent_usd"] or 0.0), reserved_usd=float(row["reserved_usd"] or 0.0),
        held_usd=float(row["held_usd"] or 0.0))


#: A key's row by its prefix; its rate bucket swapped if no one swapped it first: built
#: once (SQLAlchemy then reuses their compiled forms), as every request runs them.
_BY_PREFIX = select(S.gateway_keys).where(_K.prefix == bindparam("b_prefix"))
_SWAP = update(S.gateway_keys).where(
    _K.id == bindparam("b_id"),
    _K.rate_tat.is_not_distinct_from(bindparam("b_old", type_=Float)),
).values(rate_tat=bindparam("b_new", type_=Float))

#: A key's ``rpm`` is requests per this many seconds.
RATE_WINDOW_S = 60.0


def rate_wait(tat: float | None, rpm: int, now: float) -> tuple[float | None, float | None]:
    """A key's rate at ``now``: a bucket of ``rpm`` requests, refilled continuously at
    ``rpm`` a minute (the API's own rule for its limits), kept as one number, ``tat``:
    when the bucket is full again (None or past: full). Returns ``(None, new tat)`` if
    a request may go (it takes one request out of the bucket), else ``(seconds until
    one may, None)``. So a full bucket lets ``rpm`` requests go at once, and then one
    every ``60 / rpm`` s; over any span of ``t`` seconds no more than ``rpm + rpm * t /
    60`` go."""
    interval = RATE_WINDOW_S / rpm
    full_at = now if tat is None else max(tat, now)
    # The bucket holds (60 - (full_at - now)) / interval requests: none below 1.
    wait = full_at - (RATE_WINDOW_S - interval) - now
    if wait > 1e-9:
        return wait, None
    return None, full_at + interval


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
        Its next request is refused, in every process; so are those it has waiting in a
        lane, and its running Message Batches are canceled.

        Revoking a revoked key changes nothing. An unknown name, or a prefix two keys
        share, raises :class:`ConfigError`.
        """
        key = self._named(name_or_prefix)
        if key.active:
            now = time.time()
            with self.engine.begin() as conn:
                conn.execute(update(S.gateway_keys).where(
                    _K.id == key.id, _K.revoked_at.is_(None)).values(revoked_at=now))
                # Its Message Batches still running are canceled (their drivers see it).
                g = S.gateway_batches.c
                conn.execute(update(S.gateway_batches).where(
                    g.key_id == key.id, g.ended_at.is_(None),
                    g.cancel_initiated_at.is_(None)).values(cancel_initiated_at=now))
            key = self._named(key.name)
        return key

    def find_key(self, secret: str) -> ClientKey | None:
        """The active key whose value is ``secret``; None for anything else (an unknown
        or revoked key, or no laneway key at all)."""
        row = self._active_row(secret)
        return None if row is None else _key(row)

    def _active_row(self, secret: str) -> Any:
        if not secret.startswith(KEY_PREFIX) or len(secret) <= PREFIX_LEN:
            return None
        given = hash_secret(secret)
        with self.engine.connect() as conn:
            rows = list(conn.execute(_BY_PREFIX, {"b_prefix": secret[:PREFIX_LEN]}).mappings())
        found = None
        for row in rows:  # one, unless two keys share a prefix (one chance in 2^54)
            if hmac.compare_digest(given, row["key_hash"]):
                found = row
        return found if found is not None and found["revoked_at"] is None else None

    def key_by_id(self, key_id: str) -> ClientKey | None:
        """The active key of this id, as the ledger has it now."""
        with self.engine.connect() as conn:
            row = conn.execute(select(S.gateway_keys).where(_K.id == key_id)).mappings().first()
        return _key(row) if row is not None and row["revoked_at"] is None else None

    def revoked_keys(self, key_ids: list[str]) -> list[str]:
        """Which of ``key_ids`` are revoked (or gone)."""
        with self.engine.connect() as conn:
            active = set(conn.scalars(select(_K.id).where(_K.id.in_(key_ids),
                                                          _K.revoked_at.is_(None))))
        return [k for k in key_ids if k not in active]

    def check_key(self, secret: str, now: float | None = None
                  ) -> tuple[ClientKey | None, float | None]:
        """The active key whose value is ``secret`` (None: unknown or revoked), read from
        the ledger as it is now, and the request counted against the key's rate: the
        second value is None if it was let in, else the seconds until the key's rate
        lets the next one in (``retry-after``).

        The rate is a bucket kept as one number (:func:`rate_wait`), swapped in one
        conditional UPDATE (tried again if another process swapped it first): exact
        across processes and hosts (whose clocks agree), from the first request on, and
        the same work whatever the rpm.
        """
        row = self._active_row(secret)
        key = None if row is None else _key(row)
        if key is None or key.rpm is None:
            return key, None
        old = row["rate_tat"]  # as read with the key: a second read only after a lost swap
        for attempt in range(100):
            now_ = time.time() if now is None else now
            if attempt:
                with self.engine.connect() as conn:
                    old = conn.scalar(select(_K.rate_tat).where(_K.id == key.id))
            wait, new = rate_wait(old, key.rpm, now_)
            if wait is not None:
                return key, wait
            with self.engine.begin() as conn:
                swapped = conn.execute(_SWAP, {"b_id": key.id, "b_old": old, "b_new": new})
            if swapped.rowcount == 1:
                return key, None
        raise ConfigError(f"key {key.name!r}: its rate kept changing under this "
                          "process (100 tries)")

    def set_key(self, name_or_prefix: str, *, budget_usd: float | None = None,
                rpm: int | None = None, clear_budget: bool = False,
                clear_rpm: bool = False) -> ClientKey:
        """Change a key's budget or rate (the next request of it, in any process, sees
        the change); ``clear_*``: no budget, no rate."""
        key = self._named(name_or_prefix)
        _check(key.name, budget_usd, rpm, None)
        values: dict[str, Any] = {}
        if budget_usd is not None or clear_budget:
            values["budget_usd"] = None if clear_budget else budget_usd
        if rpm is not None or clear_rpm:
            values["rpm"] = None if clear_rpm else rpm
        if values:
            with self.engine.begin() as conn:
                conn.execute(update(S.gateway_keys).where(_K.id == key.id).values(**values))
        return self._named(key.name)

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
