"""Reservations in the ledger: a budget cannot be passed by any number of connections at
once (SQLite and PostgreSQL), settles move the worst case to the cost, a dead process's
rows are interrupted and held, an operator releases holds; and the worst-case bound."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from laneway.cost.bound import CONTEXT_WINDOW, IMAGE_TOKENS, worst_case
from laneway.errors import UnknownModelError
from laneway.store import Store, open_store
from laneway.store.reservations import Reservation, Settle


def res(key_id: str | None, worst: float, process: str = "h:1:a",
        at: float | None = None) -> Reservation:
    return Reservation(key_id=key_id, model="claude-haiku-4-5", lane="background",
                       streamed=False, worst_usd=worst, started_at=at or time.time(),
                       process=process)


def done(row: int, key_id: str | None, worst: float, cost: float) -> Settle:
    return Settle(row_id=row, key_id=key_id, worst_usd=worst, cost_usd=cost, status=200,
                  input_tokens=1, output_tokens=1, cache_creation_input_tokens=0,
                  cache_read_input_tokens=0, queued_s=0.0, ttft_s=None, duration_s=0.1,
                  upstream_errors=0)


def test_many_connections_at_once_never_reserve_past_a_budget(store: Store,
                                                              store_dsn: str) -> None:
    key, _ = store.create_key("k", budget_usd=1.0)
    others = [open_store(store_dsn) for _ in range(4)]
    try:
        with ThreadPoolExecutor(8) as pool:
            rows = list(pool.map(lambda i: others[i % 4].reserve(res(key.id, 0.3)),
                                 range(24)))
    finally:
        for o in others:
            o.close()
    got = [r for r in rows if r is not None]
    assert len(got) == 3  # 3 x 0.3 <= 1.0 < 4 x 0.3
    after = store.key_by_id(key.id)
    assert after is not None and after.reserved_usd == pytest.approx(0.9)
    assert store.settle_requests([done(got[0], key.id, 0.3, 0.05)]) == 1
    assert store.settle_requests([done(got[0], key.id, 0.3, 0.05)]) == 0  # once
    after = store.key_by_id(key.id)
    assert after is not None and after.spent_usd == pytest.approx(0.05)
    assert after.reserved_usd == pytest.approx(0.6)
    assert store.reserve(res(key.id, 0.3)) is not None  # room again


def test_a_dead_process_s_rows_are_interrupted_held_and_released(store: Store) -> None:
    key, _ = store.create_key("k", budget_usd=1.0)
    dead = store.reserve(res(key.id, 0.4, process="h:1:dead"))
    alive = store.reserve(res(key.id, 0.1, process="h:2:alive"))
    assert dead is not None and alive is not None
    assert store.interrupt_requests(lambda process, _at, _holder: process.endswith("dead")) == 1
    assert store.settle_requests([done(dead, key.id, 0.4, 0.0)]) == 0  # too late: held
    k = store.key_by_id(key.id)
    assert k is not None and (k.reserved_usd, k.held_usd) == pytest.approx((0.1, 0.4))
    assert store.reserve(res(key.id, 0.6)) is None  # the hold counts against the budget
    released = store.release_holds("k", "checked the upstream's console")
    assert released[1:] == (1, pytest.approx(0.4)) and released[0].held_usd == 0.0
    assert store.reserve(res(key.id, 0.6)) is not None


def test_a_revoked_key_reserves_nothing(store: Store) -> None:
    key, _ = store.create_key("k")
    store.revoke_key("k")
    assert store.reserve(res(key.id, 0.0)) is None
    assert store.reserve(res(None, 0.0)) is not None  # the anonymous local client


def test_the_bound() -> None:
    body = {"model": "claude-haiku-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "!?" * 100}]}
    b = worst_case(body, 300)
    assert b.usd == pytest.approx((300 * 1.0 + 100 * 5.0) / 1e6)
    cached = {**body, "system": [{"type": "text", "text": "s",
                                  "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}
    assert worst_case(cached, 300).input_price == 2.0  # the 1 h cache write
    url = {**body, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}
    assert worst_case(url, 300).input_tokens == 300 + CONTEXT_WINDOW + IMAGE_TOKENS
    search = {**body, "tools": [{"type": "web_search_20250305", "name": "web_search",
                                 "max_uses": 3}]}
    s = worst_case(search, 300)
    assert s.tool_fees_usd == pytest.approx(0.03) and "3 server-tool use(s)" in s.explain()
    assert worst_case(body, 300, batch=True).usd == pytest.approx(b.usd / 2)
    assert worst_case(body, 300, beta="context-1m-2025-08-07").output_price == 7.5
    with pytest.raises(UnknownModelError):
        worst_case({**body, "model": "nobody"}, 10)


@pytest.mark.postgres
def test_settles_lock_keys_in_one_order_so_two_never_deadlock(pg: str) -> None:
    """Two settles (two gateway processes) whose groups hold the same keys in opposite
    orders: each locks the keys' rows in one order (sorted), so neither waits for a row
    the other locked first (a deadlock: PostgreSQL kills one after deadlock_timeout)."""
    import psycopg

    store = open_store(pg)
    a, _ = store.create_key("a")
    b, _ = store.create_key("b")
    first, second = sorted([a.id, b.id])
    rows = {k: store.reserve(res(k, 0.1)) for k in (first, second)}
    settles = [done(rows[k] or 0, k, 0.1, 0.01) for k in (second, first)]  # reversed
    with psycopg.connect(pg) as other, ThreadPoolExecutor(1) as pool:
        other.execute("SET lock_timeout = '500ms'")  # shorter than deadlock_timeout (1 s)
        # another settle, in the one order: holds the first key's row...
        other.execute("UPDATE gateway_keys SET spent_usd = spent_usd WHERE id = %s",
                      (first,))
        settled = pool.submit(store.settle_requests, settles)
        time.sleep(0.3)  # ...while this one waits for it (holding nothing else)
        other.execute("UPDATE gateway_keys SET spent_usd = spent_usd WHERE id = %s",
                      (second,))  # LockNotAvailable if the settle took it first
        other.commit()
        assert settled.result(timeout=10) == 2
    for k in (first, second):
        key = store.key_by_id(k)
        assert key is not None and key.spent_usd == pytest.approx(0.01)
        assert key.reserved_usd == pytest.approx(0.0)
    store.close()
