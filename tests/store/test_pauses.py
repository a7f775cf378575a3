"""Rate-limit pauses shared through the ledger."""

from __future__ import annotations

import time

from laneway.store import Store, pauses


def test_publish_and_read(store: Store) -> None:
    now = time.time()
    assert pauses.current(store, "m") is None
    pauses.publish(store, "m", until=now + 30, reason="429")
    p = pauses.current(store, "m")
    assert p is not None and p.until == now + 30 and p.reason == "429"
    assert 29 < p.remaining_s() <= 30
    # A shorter pause never shortens the one in force; a longer one extends it.
    pauses.publish(store, "m", until=now + 10, reason="short")
    p = pauses.current(store, "m")
    assert p is not None and p.until == now + 30 and p.reason == "429"
    pauses.publish(store, "m", until=now + 60, reason="longer")
    p = pauses.current(store, "m")
    assert p is not None and p.until == now + 60 and p.reason == "longer"


def test_active_skips_pauses_that_ended(store: Store) -> None:
    now = time.time()
    pauses.publish(store, "old", until=now - 1)
    pauses.publish(store, "b", until=now + 5)
    pauses.publish(store, "a", until=now + 5)
    assert [p.model for p in pauses.active(store, now=now)] == ["a", "b"]
    assert pauses.current(store, "old") is None
    # A new pause after an old one ended replaces it.
    pauses.publish(store, "old", until=now + 3, reason="again")
    p = pauses.current(store, "old")
    assert p is not None and p.reason == "again"
