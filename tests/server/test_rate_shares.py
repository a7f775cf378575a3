"""Several governors on one account, sharing its limits through one ledger (a real
PostgreSQL, and one SQLite file): each holds a share that follows what it wants, the
shares sum to at most 1, and what an idle or gone process held flows to the busy ones.

The end-to-end test (two ``laneway serve`` processes in front of one rate-limited local
API) is in ``test_serve_processes.py``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import pgserver
from laneway.governor import Governor, Lane, Permit, RateLimits
from laneway.governor_share import MIN_SHARE, ShareSync
from laneway.server.quota import LedgerBoard, sharing_wanted
from laneway.store import AsyncStore, open_store
from laneway.store import rate_shares as R

MODEL = "claude-haiku-4-5"
LIMITS = RateLimits(rpm=600, itpm=60_000, otpm=30_000)
KINDS = ("requests", "input", "output")
RESERVE = 0.04


@pytest.fixture(scope="module")
def pg_server() -> str:
    try:
        dsn = pgserver.find_postgres()
        pgserver.wait_ready(dsn)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    return dsn


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ledger.db'}"
        return
    server: str = request.getfixturevalue("pg_server")
    name, found = pgserver.new_schema(server)
    yield found
    pgserver.drop_schema(server, name)


@dataclass
class Proc:
    """One process's governor and its sync, on its own connection to the ledger."""

    name: str
    governor: Governor
    sync: ShareSync
    astore: AsyncStore
    tasks: list[asyncio.Task[Permit]] = field(default_factory=list)

    def share(self, kind: str = "requests") -> float:
        return self.governor.models[MODEL].buckets[kind].share

    def want(self, n: int) -> None:
        """Have ``n`` requests waiting for the governor (one is let through at a time)."""
        for _ in range(n):
            self.tasks.append(asyncio.create_task(self.governor.acquire(
                Lane.BACKGROUND, MODEL, input_tokens=100, max_tokens=50)))

    def waiting(self) -> int:
        return sum(len(q) for q in self.governor.models[MODEL].waiting.values())

    async def idle(self) -> None:
        for t in self.tasks:
            t.cancel()
        for got in await asyncio.gather(*self.tasks, return_exceptions=True):
            if isinstance(got, Permit):
                self.governor.release(got, outcome="canceled")
        self.tasks.clear()


Make = Callable[..., Proc]


@pytest.fixture
async def make(dsn: str) -> AsyncIterator[Make]:
    """Makes a process: ``make(name, limits=LIMITS)``."""
    made: list[Proc] = []

    def make_one(name: str, *, limits: RateLimits | None = LIMITS) -> Proc:
        astore = AsyncStore(open_store(dsn))
        governor = Governor(limits=limits, clock=lambda: 1000.0)  # time stands still
        governor.fix_concurrency(1)  # all but one request wait: the backlog is exact
        sync = ShareSync(governor, LedgerBoard(astore, name), process=name,
                         reserve=RESERVE)
        proc = Proc(name, governor, sync, astore)
        made.append(proc)
        return proc

    yield make_one
    for p in made:
        await p.idle()
        await p.sync.leave()
        p.astore.close()
        p.astore.store.close()


async def beat_all(*ps: Proc) -> None:
    """Two rounds: everyone has seen everyone's latest wants."""
    for _ in range(2):
        for p in ps:
            await p.sync.beat()


async def test_shares_follow_demand_and_sum_to_one(make: Make) -> None:
    a, b = make("a"), make("b")
    a.want(31)
    b.want(11)
    await asyncio.sleep(0)
    await beat_all(a, b)
    floor = RESERVE / 2
    for kind in KINDS:
        total = a.share(kind) + b.share(kind)
        assert total <= 1.0 + 1e-9
        assert total == pytest.approx(1.0)
        # Beyond the floors, in proportion to what waits: 30 against 10.
        assert (a.share(kind) - floor) / (b.share(kind) - floor) == pytest.approx(3.0)
    assert a.share() == pytest.approx(floor + (1 - 2 * floor) * 0.75)
    # The limit stays the account's; the bucket holds and refills the share of it.
    bucket = a.governor.models[MODEL].buckets["requests"]
    assert bucket.limit_per_min == 600
    assert bucket.capacity == pytest.approx(600 * a.share())
    assert bucket.level <= bucket.capacity
    assert a.sync.processes == b.sync.processes == 2


async def test_the_grants_never_sum_to_more_than_the_limit(make: Make, dsn: str) -> None:
    ps = [make("a"), make("b"), make("c")]
    rng = random.Random(5)
    store = open_store(dsn)
    try:
        for step in range(12):
            for p in ps:  # demand changes every step, and beats come in any order
                if rng.random() < 0.4:
                    await p.idle()
                else:
                    p.want(rng.randint(1, 40))
            await asyncio.sleep(0)
            for p in rng.sample(ps, len(ps)):
                await p.sync.beat()
                rows = [r for r in R.live(store) if r.model == MODEL]
                for i in range(3):
                    assert sum(r.granted[i] for r in rows) <= 1.0 + 3 * MIN_SHARE, step
    finally:
        store.close()


async def test_an_idle_process_gives_its_share_to_the_busy_one(make: Make) -> None:
    a, b = make("a"), make("b")
    a.want(21)
    b.want(21)
    await asyncio.sleep(0)
    await beat_all(a, b)
    assert a.share() == pytest.approx(0.5) and b.share() == pytest.approx(0.5)
    await b.idle()
    await beat_all(b, a)
    floor = RESERVE / 2
    assert b.share() == pytest.approx(floor)  # enough to start again at once
    assert a.share() == pytest.approx(1 - floor)
    assert a.share() + b.share() <= 1.0 + 1e-9
    # b wants again: its share comes back at the next beats.
    b.want(21)
    await asyncio.sleep(0)
    await beat_all(b, a)
    # (b's bucket, down to its floor, holds too little to let even one through now.)
    wa, wb = a.waiting(), b.waiting()
    assert wb in (20, 21) and wa == 20
    assert b.share() == pytest.approx(floor + (1 - 2 * floor) * wb / (wa + wb))


async def test_a_process_gone_leaves_its_share(make: Make) -> None:
    a, b = make("a"), make("b")
    a.want(11)
    b.want(11)
    await asyncio.sleep(0)
    await beat_all(a, b)
    assert a.share() == pytest.approx(0.5)
    await b.idle()
    await b.sync.leave()  # a clean stop
    await a.sync.beat()
    assert a.share() == 1.0 and a.sync.processes == 1


async def test_a_process_that_stops_beating_is_gone_after_live_s(dsn: str) -> None:
    stores = [AsyncStore(open_store(dsn)) for _ in range(2)]
    try:
        boards = [LedgerBoard(s, name, live_s=0.5) for s, name in zip(stores, "ab",
                                                                        strict=True)]
        wanted = {"": (0.0, 0.0, 0.0), MODEL: (60.0, 0.0, 0.0)}
        await boards[1].exchange(wanted, lambda rows: {MODEL: (1.0, 1.0, 1.0)})
        seen = await boards[0].exchange(wanted, lambda rows: {})
        assert {r.process for r in seen} == {"a", "b"}
        await asyncio.sleep(0.7)  # b beats no more (killed)
        held: list[float] = []
        seen = await boards[0].exchange(
            wanted, lambda rows: held.extend(r.granted[0] for r in rows) or {})
        assert {r.process for r in seen} == {"a"} and held == [0.0, 0.0]
    finally:
        for s in stores:
            s.close()
            s.store.close()


async def test_a_new_process_starts_at_its_floor_not_the_whole_limit(make: Make) -> None:
    a, b = make("a"), make("b", limits=None)  # b learns the limits from the headers
    a.want(11)
    await asyncio.sleep(0)
    await beat_all(a, b)  # b is live but has never sent: no bucket yet
    assert MODEL not in b.governor.models
    assert b.governor.default_share == pytest.approx(RESERVE / 2)
    # b learns the account's limit from a response's headers: the limit is the
    # account's, and b holds its floor of what is left of it.
    permit = b.governor.try_acquire(Lane.INTERACTIVE, MODEL, input_tokens=10, max_tokens=10)
    assert permit is not None
    b.governor.release(permit, outcome="ok", usage={"input_tokens": 10, "output_tokens": 5},
                       headers={"anthropic-ratelimit-requests-limit": "600",
                                "anthropic-ratelimit-requests-remaining": "500"})
    bucket = b.governor.models[MODEL].buckets["requests"]
    assert bucket.limit_per_min == 600
    assert bucket.level == pytest.approx(500 * RESERVE / 2)


async def test_rows_are_on_the_database_clock(dsn: str) -> None:
    store = open_store(dsn)
    try:
        rows = R.heartbeat(store, "p", host="h", pid=1, wanted={"": (0.0, 0.0, 0.0)},
                           decide=lambda rows: {})
        assert [(r.process, r.model, r.age_s < 5) for r in rows] == [("p", "", True)]
        R.leave(store, "p")
        assert R.live(store) == []
    finally:
        store.close()


def test_sharing_is_on_with_workers_or_postgresql() -> None:
    assert not sharing_wanted("x.db", workers=1, share=None)
    assert sharing_wanted("x.db", workers=2, share=None)
    assert sharing_wanted("postgresql://u@h/db", workers=1, share=None)
    assert not sharing_wanted("postgresql://u@h/db", workers=4, share=False)
    assert sharing_wanted("x.db", workers=1, share=True)
