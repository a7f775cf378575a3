"""Group commits on SQLite: on the event loop's own thread when nothing is in the way,
through the store's thread when another connection holds the write lock (the loop never
waits for it), and on PostgreSQL always through the thread."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laneway.store import AsyncStore, GroupWriter, Store, open_store
from laneway.store.reservations import Reservation
from laneway.store.statuses import JobStatus

from .helpers import done, make_run


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    st = open_store(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield st
    st.close()


def spy_finish(store: Store) -> list[str]:
    """The name of the thread each ``Store.finish`` ran on, in order."""
    threads: list[str] = []
    original = store.finish

    def finish(items: Any, **kwargs: Any) -> list[int]:
        threads.append(threading.current_thread().name)
        return original(items, **kwargs)

    store.finish = finish  # type: ignore[method-assign]
    return threads


async def test_commits_on_the_loop_unless_another_connection_writes(
        sqlite_store: Store, tmp_path: Path) -> None:
    make_run(sqlite_store, n=3)
    threads = spy_finish(sqlite_store)
    astore = AsyncStore(sqlite_store)
    writer = GroupWriter(astore)
    writer.start()
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    try:
        assert await writer.record(done("r1", 0))
        assert threads == [threading.current_thread().name]

        other.execute("BEGIN IMMEDIATE")  # another process writing: the lock is taken
        pending = asyncio.ensure_future(writer.record(done("r1", 1)))
        started = time.monotonic()
        await asyncio.sleep(0.3)  # the loop goes on meanwhile
        assert time.monotonic() - started < 0.3 + 0.25 and not pending.done()
        other.execute("COMMIT")
        assert await asyncio.wait_for(pending, 30)
        # Tried on the loop (refused at once: locked), then committed by the thread.
        assert threads[1] == threads[0] and threads[2].startswith("laneway-store")

        assert await writer.record(done("r1", 2))  # free again: on the loop once more
        assert threads[-1] == threading.current_thread().name
    finally:
        other.close()
        await writer.close()
        astore.close()
    counts = sqlite_store.counts("r1")
    assert counts[JobStatus.SUCCEEDED] == 3 and counts.cost_usd == pytest.approx(0.03)


@pytest.mark.postgres
async def test_postgres_commits_through_the_thread(pg_dsn: str) -> None:
    store = open_store(pg_dsn)
    make_run(store, n=1)
    threads = spy_finish(store)
    astore = AsyncStore(store)
    writer = GroupWriter(astore)
    writer.start()
    try:
        assert await writer.record(done("r1", 0))
    finally:
        await writer.close()
        astore.close()
        store.close()
    assert len(threads) == 1 and threads[0].startswith("laneway-store")


async def test_the_gateways_statements_run_on_the_loop_unless_another_connection_writes(
        sqlite_store: Store, tmp_path: Path) -> None:
    """A key's check and a reservation (every gateway request) run on the loop's thread
    when the write lock is free; held elsewhere, the loop does not wait for it: the
    statement goes through the store's thread once the lock is free."""
    key, secret = sqlite_store.create_key("k", budget_usd=1.0, rpm=1000)
    threads: list[str] = []
    original = Store.reserve

    def reserve(store: Store, r: Reservation) -> int | None:
        threads.append(threading.current_thread().name)
        return original(store, r)

    astore = AsyncStore(sqlite_store)
    other = sqlite3.connect(tmp_path / "ledger.db", isolation_level=None)
    mine = threading.current_thread().name
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Store, "reserve", reserve)
        try:
            found, wait = await astore.check_key(secret)
            assert found is not None and found.id == key.id and wait is None
            one = Reservation(key.id, "claude-haiku-4-5", "interactive", True, 0.4,
                              time.time(), "here:1:x")
            assert await astore.reserve(one) is not None
            assert threads == [mine]

            other.execute("BEGIN IMMEDIATE")  # another process writing
            pending = asyncio.ensure_future(astore.reserve(one))
            started = time.monotonic()
            await asyncio.sleep(0.3)
            assert time.monotonic() - started < 0.3 + 0.25 and not pending.done()
            other.execute("COMMIT")
            assert await asyncio.wait_for(pending, 30) is not None
            assert threads[1] == mine and threads[2].startswith("laneway-store")
            # The budget holds whichever thread wrote: 0.4 + 0.4 + 0.4 > 1.0.
            assert await astore.reserve(one) is None and threads[-1] == mine
        finally:
            other.close()
            astore.close()
    assert sqlite_store.key_by_id(key.id).reserved_usd == pytest.approx(0.8)  # type: ignore[union-attr]
