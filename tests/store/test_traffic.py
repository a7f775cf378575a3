"""The gateway's traffic in the ledger: recorded in one transaction, summed by key and
by time bucket, and a key's spend (known prices only)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from sqlalchemy.exc import IntegrityError

from laneway.store import AsyncStore, Store, TrafficRecord

T0 = 1_700_000_000.0  # a multiple of 10


def rec(key_id: str | None, *, model: str = "claude-haiku-4-5", lane: str = "interactive",
        status: int = 200, cost: float | None = 0.01, at: float = T0, tin: int = 100,
        tout: int = 20, queued: float = 0.0, ttft: float | None = 0.2,
        upstream_errors: int = 0) -> TrafficRecord:
    return TrafficRecord(
        key_id=key_id, model=model, lane=lane, status=status, streamed=ttft is not None,
        input_tokens=tin, output_tokens=tout, cache_creation_input_tokens=3,
        cache_read_input_tokens=7, cost_usd=cost, queued_s=queued, ttft_s=ttft,
        duration_s=1.0, upstream_errors=upstream_errors, started_at=at)


def test_spent_counts_known_prices_of_that_key_only(store: Store) -> None:
    a, _ = store.create_key("a")
    b, _ = store.create_key("b")
    assert store.spent_usd(a.id) == 0.0
    store.record_requests([rec(a.id, cost=0.25), rec(a.id, cost=None), rec(a.id, cost=0.5),
                           rec(b.id, cost=4.0), rec(None, cost=8.0)])
    assert store.spent_usd(a.id) == pytest.approx(0.75)
    assert store.spent_usd(b.id) == pytest.approx(4.0)
    assert store.spent_usd("key_unknown") == 0.0
    assert store.spent_by_key() == pytest.approx({a.id: 0.75, b.id: 4.0})


def test_a_group_is_recorded_whole_or_not_at_all(store: Store) -> None:
    store.record_requests([])
    k, _ = store.create_key("k")
    bad = replace(rec(k.id), model=None)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        store.record_requests([rec(k.id, cost=1.0), bad])
    assert store.traffic_by_key() == [] and store.spent_usd(k.id) == 0.0
    store.record_requests([rec(k.id, cost=1.0)])
    assert store.spent_usd(k.id) == 1.0


def test_traffic_by_key_model_and_lane(store: Store) -> None:
    a, _ = store.create_key("alice")
    store.record_requests([
        rec(a.id, queued=0.5, ttft=0.2, tin=100, upstream_errors=2),
        rec(a.id, queued=1.5, ttft=0.4, tin=50, cost=None),
        rec(a.id, status=429, queued=0.0, ttft=None, tin=0, tout=0, cost=0.0),
        rec(a.id, lane="background", model="claude-sonnet-4-6", cost=0.3),
        rec(None, status=500, at=T0 - 100),
    ])
    rows = store.traffic_by_key()
    assert [(r["key"], r["model"], r["lane"]) for r in rows] == [
        ("alice", "claude-haiku-4-5", "interactive"),
        ("alice", "claude-sonnet-4-6", "background"),
        ("local", "claude-haiku-4-5", "interactive"),
    ]
    first = rows[0]
    assert first["key_id"] == a.id
    assert (first["requests"], first["errors"], first["unpriced"]) == (3, 1, 1)
    assert (first["input_tokens"], first["output_tokens"]) == (150, 40)
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (9, 21)
    assert first["cost_usd"] == pytest.approx(0.01)
    assert first["queued_s_mean"] == pytest.approx(2.0 / 3)
    assert first["queued_s_max"] == pytest.approx(1.5)
    assert first["ttft_s_mean"] == pytest.approx(0.3)  # the request with none is left out
    assert first["duration_s_mean"] == pytest.approx(1.0)
    assert first["upstream_errors"] == 2
    local = rows[2]
    assert local["key_id"] is None and local["errors"] == 1
    # Since: the older anonymous request drops out.
    assert [r["key"] for r in store.traffic_by_key(since=T0)] == ["alice", "alice"]


def test_a_revoked_key_keeps_its_name_in_the_traffic(store: Store) -> None:
    k, _ = store.create_key("gone")
    store.record_requests([rec(k.id)])
    store.revoke_key("gone")
    assert [r["key"] for r in store.traffic_by_key()] == ["gone"]


def test_timeline_buckets(store: Store) -> None:
    store.record_requests([
        rec(None, at=T0 - 30),  # before `since`
        rec(None, at=T0, tin=1, tout=2),
        rec("k", at=T0 + 9.99, tin=10, tout=20, status=529),
        rec(None, at=T0 + 10, tin=100, tout=200, cost=None),
        rec(None, at=T0 + 35.5, tin=1000, tout=2000, cost=0.5),
    ])
    assert store.traffic_timeline(T0, bucket_s=10) == [
        {"at": T0, "requests": 2, "errors": 1, "input_tokens": 11, "output_tokens": 22,
         "cost_usd": pytest.approx(0.02)},
        {"at": T0 + 10, "requests": 1, "errors": 0, "input_tokens": 100,
         "output_tokens": 200, "cost_usd": 0.0},
        {"at": T0 + 30, "requests": 1, "errors": 0, "input_tokens": 1000,
         "output_tokens": 2000, "cost_usd": pytest.approx(0.5)},
    ]
    minute = store.traffic_timeline(T0 - 60, bucket_s=60)
    assert [(b["at"], b["requests"]) for b in minute] == [(T0 - 80, 1), (T0 - 20, 4)]
    with pytest.raises(ValueError, match="bucket_s"):
        store.traffic_timeline(T0, bucket_s=0)


async def test_the_async_store_has_typed_calls_for_the_gateway(store: Store) -> None:
    astore = AsyncStore(store)
    try:
        key, secret = await astore.create_key("async", rpm=3, lane="interactive")
        assert await astore.find_key(secret) == key
        assert await astore.find_key("lw_nothing-of-the-kind") is None
        await astore.record_requests([rec(key.id, cost=0.125), rec(None, cost=1.0)])
        spent = await astore.key_by_id(key.id)
        assert spent is not None and spent.spent_usd == pytest.approx(0.125)
        assert await astore.spent_by_key() == pytest.approx({key.id: 0.125})
        key = spent
        assert [r["key"] for r in await astore.traffic_by_key()] == ["async", "local"]
        assert [b["requests"] for b in await astore.traffic_timeline(T0)] == [2]
        assert await astore.list_keys() == [key]
        assert not (await astore.revoke_key("async")).active
        assert await astore.find_key(secret) is None
    finally:
        astore.close()
