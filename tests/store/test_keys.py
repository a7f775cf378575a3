"""The gateway's client keys in the ledger: made, found, revoked; only a hash is kept."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from sqlalchemy import select

from laneway.errors import ConfigError
from laneway.governor.buckets import Lane
from laneway.store import ClientKey, Store, open_store
from laneway.store import keys as K
from laneway.store.schema import gateway_keys


def test_a_new_key_is_found_by_its_value_and_by_nothing_else(store: Store) -> None:
    key, secret = store.create_key("alice", budget_usd=5.0, rpm=60, lane="background")
    assert secret.startswith("lw_") and len(secret) == 46
    assert key.prefix == secret[:12] and key.name == "alice" and key.active
    assert (key.budget_usd, key.rpm, key.lane) == (5.0, 60, Lane.BACKGROUND)
    assert store.find_key(secret) == key
    # Same prefix, another ending: the hash decides.
    other = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    for wrong in (other, secret[:12], secret + "x", "", "sk-ant-api03-whatever", "lw_"):
        assert store.find_key(wrong) is None, wrong
    assert store.list_keys() == [key]


def test_a_key_s_lanes_are_the_governor_s() -> None:
    # The ledger keeps a key's lane by name, without importing the governor.
    assert tuple(lane.value for lane in Lane) == K.LANES


def test_keys_without_settings_and_two_keys_apart(store: Store) -> None:
    a, sa = store.create_key("a")
    b, sb = store.create_key("b.svc@team-1")
    assert (a.budget_usd, a.rpm, a.lane) == (None, None, None)
    assert sa != sb and a.id != b.id
    assert store.find_key(sa) == a and store.find_key(sb) == b
    assert [k.name for k in store.list_keys()] == ["a", "b.svc@team-1"]


def test_revoke_by_name_prefix_or_value(store: Store) -> None:
    made = {n: store.create_key(n) for n in ("by-name", "by-prefix", "by-value")}
    refs = {"by-name": "by-name", "by-prefix": made["by-prefix"][0].prefix,
            "by-value": made["by-value"][1]}
    for name, ref in refs.items():
        revoked = store.revoke_key(ref)
        assert revoked.name == name and not revoked.active and revoked.revoked_at is not None
        assert store.find_key(made[name][1]) is None
    assert store.list_keys() == []
    assert {k.name for k in store.list_keys(include_revoked=True)} == set(made)


def test_revoking_twice_changes_nothing_and_unknown_keys_are_errors(store: Store) -> None:
    store.create_key("bob")
    first = store.revoke_key("bob")
    assert store.revoke_key("bob") == first
    for ref in ("nobody", "lw_doesnotexist", "lw_" + "x" * 43):
        with pytest.raises(ConfigError, match="no key named") as info:
            store.revoke_key(ref)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(("args", "message"), [
    ({"name": ""}, "key name"),
    ({"name": "has space"}, "key name"),
    ({"name": "lw_looks_like_a_key"}, "key name"),
    ({"name": "x" * 101}, "key name"),
    ({"name": "ok", "budget_usd": -0.01}, "budget"),
    ({"name": "ok", "budget_usd": 0.0}, "a budget must be more than 0"),
    ({"name": "ok", "budget_usd": float("nan")}, "budget"),
    ({"name": "ok", "budget_usd": float("inf")}, "budget"),
    ({"name": "ok", "rpm": 0}, "rpm"),
    ({"name": "ok", "lane": "fast"}, "choose interactive or background"),
])
def test_bad_settings_are_one_line_errors_and_write_nothing(
        store: Store, args: dict[str, object], message: str) -> None:
    rest = dict(args)  # the same dict serves each database: leave it whole
    name = str(rest.pop("name"))
    with pytest.raises(ConfigError, match=message) as info:
        store.create_key(name, **rest)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    assert store.list_keys(include_revoked=True) == []


def test_a_name_is_never_reused_even_after_revoke(store: Store) -> None:
    store.create_key("carol", budget_usd=1.0)
    with pytest.raises(ConfigError, match="already exists"):
        store.create_key("carol")
    store.revoke_key("carol")
    with pytest.raises(ConfigError, match="already exists"):
        store.create_key("carol")
    assert len(store.list_keys(include_revoked=True)) == 1


def test_keys_sharing_a_prefix(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    values = iter(["lw_SAMEPREFIXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                   "lw_SAMEPREFIXbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"])
    monkeypatch.setattr(K, "new_secret", lambda: next(values))
    a, sa = store.create_key("a")
    b, sb = store.create_key("b")
    assert a.prefix == b.prefix
    assert store.find_key(sa) == a and store.find_key(sb) == b
    with pytest.raises(ConfigError, match="more than one key"):
        store.revoke_key(a.prefix)
    store.revoke_key("a")
    assert store.find_key(sa) is None and store.find_key(sb) == b


def test_find_key_compares_hashes_in_constant_time(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret = store.create_key("timed")
    compared: list[tuple[object, object]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(K.hmac, "compare_digest", spy)
    assert store.find_key(secret) == key
    assert compared == [(K.hash_secret(secret), K.hash_secret(secret))]


def test_the_key_itself_is_never_written_to_the_ledger(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    store = open_store(str(db))
    secrets_: list[str] = []
    try:
        for name in ("one", "two"):
            secrets_.append(store.create_key(name)[1])
        store.revoke_key("two")
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("ledger.db*"))
    finally:
        store.close()
    stored += db.read_bytes()
    for secret in secrets_:
        assert K.hash_secret(secret).encode() in stored  # what is there is findable
        assert secret[:12].encode() in stored
        assert secret.encode() not in stored
        assert secret[12:].encode() not in stored


def test_a_key_survives_reopening(store_dsn: str) -> None:
    first = open_store(store_dsn)
    try:
        key, secret = first.create_key("kept", lane="interactive", rpm=5)
    finally:
        first.close()
    again = open_store(store_dsn)
    try:
        found = again.find_key(secret)
        assert found == key and isinstance(found, ClientKey)
        assert found.lane == Lane.INTERACTIVE
    finally:
        again.close()


def test_a_key_s_rate_is_a_bucket_of_rpm_refilled_continuously(store: Store) -> None:
    """rpm 3: three at once from a full bucket, then one every 20 s; a refused request
    takes nothing out of it, and its wait is exact."""
    key, secret = store.create_key("paced", rpm=3)
    t0 = 1_000_000.0
    assert [store.check_key(secret, now=t0)[1] for _ in range(3)] == [None, None, None]
    found, wait = store.check_key(secret, now=t0)
    assert found == key and wait == pytest.approx(20.0)
    assert store.check_key(secret, now=t0 + 19.9)[1] == pytest.approx(0.1)
    assert store.check_key(secret, now=t0 + 20.0)[1] is None
    assert store.check_key(secret, now=t0 + 20.0)[1] == pytest.approx(20.0)
    # Idle for long: full again, never fuller than rpm.
    later = t0 + 3600
    assert [store.check_key(secret, now=later)[1] is None for _ in range(4)] == \
        [True, True, True, False]


def test_a_key_s_rate_costs_the_same_at_any_rpm(store: Store) -> None:
    """The rate is one number in the key's row, not the times of its last rpm requests
    (a JSON list of up to rpm entries, read and written whole by each request)."""
    _, secret = store.create_key("busy", rpm=100_000)
    t0 = 1_000_000.0
    for _ in range(500):
        assert store.check_key(secret, now=t0)[1] is None
    with store.engine.connect() as conn:
        row = conn.execute(select(gateway_keys)).mappings().one()
    assert row["rate_tat"] == pytest.approx(t0 + 500 * 60 / 100_000)
    assert row["sent_at"] is None


def test_rate_wait_never_lets_more_than_rpm_plus_the_refill_through() -> None:
    rpm, now, tat, sent = 7, 0.0, None, []
    while now < 300:
        wait, new = K.rate_wait(tat, rpm, now)
        if wait is None:
            tat = new
            sent.append(now)
        now += 0.25
    for start in sent:
        span = [t for t in sent if start <= t < start + 60]
        assert len(span) <= rpm + rpm  # a full bucket, and 60 s of refill
        assert len([t for t in sent if start <= t < start + 1]) <= rpm
    assert len(sent) == pytest.approx(rpm + rpm * 300 / 60, abs=1)
