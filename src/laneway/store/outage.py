"""Riding out a PostgreSQL outage: a restart, a failover, a network blip of a few minutes.

Workers and ``laneway serve`` hold results that were paid for and jobs under lease; a
ledger that is away for 20 s must not end them. :func:`ride_out` tries a ledger call
again, with backoff, while the database cannot be reached, for up to
``$LANEWAY_DB_OUTAGE_S`` seconds (default 300), then fails with one line. Every call
it repeats is safe to repeat: results are recorded once (``Store.finish``), claims and
leases are updates of the caller's own rows, and ingest goes on from its mark.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from laneway.errors import StoreError
from laneway.store.leases import env_seconds

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The environment variable that bounds how long an outage is ridden out, in seconds.
OUTAGE_ENV = "LANEWAY_DB_OUTAGE_S"
DEFAULT_OUTAGE_S = 300.0
#: Backoff between tries: from the first, doubling, to the most.
FIRST_WAIT_S = 0.1
MOST_WAIT_S = 2.0
#: One warning per outage, however many calls wait on it.
_WARN_EVERY_S = 30.0
_warned_at = -_WARN_EVERY_S


def outage_s() -> float:
    return env_seconds(OUTAGE_ENV, DEFAULT_OUTAGE_S)


def unreachable(exc: BaseException) -> bool:
    """True when ``exc`` says the database is away (not that the statement is wrong)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _reason(exc: DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


async def ride_out(attempt: Callable[[], Awaitable[T]], *, where: str,
                   budget_s: float | None = None) -> T:
    """``await attempt()``, tried again while the database is unreachable, for up to
    ``budget_s`` (default :func:`outage_s`); then :class:`StoreError`, one line."""
    limit_s = outage_s() if budget_s is None else budget_s
    down_since: float | None = None
    warned = False
    wait_s = FIRST_WAIT_S
    while True:
        try:
            result = await attempt()
        except DBAPIError as exc:
            if not unreachable(exc):
                raise
            now = time.monotonic()
            if down_since is None:
                down_since = now
                warned = _warn("the ledger %s is unreachable (%s); trying again for up to %g s",
                      where, _reason(exc), limit_s)
            left_s = limit_s - (now - down_since)
            if left_s <= 0:
                raise StoreError(
                    f"the ledger {where} has been unreachable for {limit_s:g} s "
                    f"({_reason(exc)}); nothing recorded is lost: run the same command "
                    "again when it is back") from None
            await asyncio.sleep(min(wait_s, left_s))
            wait_s = min(wait_s * 2, MOST_WAIT_S)
            continue
        if warned and down_since is not None:
            log.warning("the ledger %s is back after %.1f s", where,
                        time.monotonic() - down_since)
        return result


def _warn(msg: str, *args: object) -> bool:
    """Log ``msg`` unless another call did within the last 30 s; True if logged."""
    global _warned_at
    now = time.monotonic()
    if now - _warned_at < _WARN_EVERY_S:
        return False
    _warned_at = now
    log.warning(msg, *args)
    return True
