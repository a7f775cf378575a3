"""Rate-limit pauses shared through the ledger."""

from __future__ import annotations

import time

from laneway.store import Store, pauses


def _pause(store: Store, model: str, *, now: float) -> pauses.Pause | None:
    """``model``'s pause in force at ``now``, as a worker polling the table sees it."""
    return next((p for p in pauses.active(store, now=now) if p.model == model), None)


def test_publish_and_read(store: Store) -> None:
    now = time.time()
    assert _pause(store, "m", now=now) is None
    pauses.publish(store, "m", until=now + 30, reason="429")
    p = _pause(store, "m", now=now)
    assert p is not None and p.until == now + 30 and p.reason == "429"
    # A shorter pause never shortens the one in force; a longer one extends it.
    pauses.publish(store, "m", until=now + 10, reason="short")
    p = _pause(store, "m", now=now)
    assert p is not None and p.until == now + 30 and p.reason == "429"
    pauses.publish(store, "m", until=now + 60, reason="longer")
    p = _pause(store, "m", now=now)
    assert p is not None and p.until == now + 60 and p.reason == "longer"


def test_active_skips_pauses_that_ended(store: Store) -> None:
    now = time.time()
    pauses.publish(store, "old", until=now - 1)
    pauses.publish(store, "b", until=now + 5)
    pauses.publish(store, "a", until=now + 5)
    assert [p.model for p in pauses.active(store, now=now)] == ["a", "b"]
    # A new pause after an old one ended replaces it.
    pauses.publish(store, "old", until=now + 3, reason="again")
    p = _pause(store, "old", now=now)
    assert p is not None and p.reason == "again"
