"""Several governors on one account, sharing its limits through one ledger (a real
PostgreSQL, and one SQLite file): each holds a share that follows what it wants, the
shares sum to at most 1, and what an idle or gone process held flows to the busy ones.

End to end: two ``laneway serve`` processes on one PostgreSQL ledger in front of one
local API limited to 120 requests per minute, driven with the official SDK, together
stay within the limit and use most of it; ``--workers 2`` on one SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import anthropic
import httpx
import pytest
from sqlalchemy import func, select

import pgserver
from laneway.governor.buckets import Lane, RateLimits
from laneway.governor.core import Governor
from laneway.governor.quota import LedgerBoard, QuotaSharing, sharing_wanted
from laneway.governor.share import MIN_SHARE, ShareSync, hold_share
from laneway.governor.state import Permit
from laneway.local import RunningLocal
from laneway.local.server import free_port
from laneway.store import AsyncStore, open_store
from laneway.store import rate_shares as R
from laneway.store import schema as S
from laneway.store.holders import this_identity

MODEL = "claude-haiku-4-5"
LIMITS = RateLimits(rpm=600, itpm=60_000, otpm=30_000)
KINDS = ("requests", "input", "output")
RESERVE = 0.04



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
        await boards[1].exchange(wanted, {}, lambda rows: {MODEL: (1.0, 1.0, 1.0)})
        seen = await boards[0].exchange(wanted, {}, lambda rows: {})
        assert {r.process for r in seen} == {"a", "b"}
        await asyncio.sleep(0.7)  # b beats no more (killed)
        held: list[float] = []
        seen = await boards[0].exchange(
            wanted, {}, lambda rows: held.extend(r.granted[0] for r in rows) or {})
        assert {r.process for r in seen} == {"a"} and held == [0.0, 0.0]
    finally:
        for s in stores:
            s.close()
            s.store.close()


async def test_a_new_process_starts_at_its_floor_not_the_whole_limit(make: Make) -> None:
    a, b = make("a"), make("b", limits=None)  # b learns the limits from the headers
    await b.sync.beat()  # b is live but has never sent: no bucket yet
    assert MODEL not in b.governor.models
    assert b.governor.default_share == 1.0  # alone
    a.want(11)
    await asyncio.sleep(0)
    await a.sync.beat()
    await b.sync.beat()
    assert b.governor.default_share == pytest.approx(RESERVE / 2)


def test_a_limit_learnt_from_headers_stays_the_accounts() -> None:
    governor = Governor(clock=lambda: 1000.0)
    governor.default_share = 0.25  # what a beat set: several processes are live
    permit = governor.try_acquire(Lane.INTERACTIVE, MODEL, input_tokens=10, max_tokens=10)
    assert permit is not None
    governor.release(permit, outcome="ok", usage={"input_tokens": 10, "output_tokens": 5},
                     headers={"anthropic-ratelimit-requests-limit": "600",
                              "anthropic-ratelimit-requests-remaining": "500"})
    bucket = governor.models[MODEL].buckets["requests"]
    assert bucket.limit_per_min == 600 and bucket.share == 0.25
    assert bucket.level == pytest.approx(500 * 0.25)  # its share of what is left
    assert bucket.capacity == pytest.approx(150) and bucket.rate_per_s < 600 * 0.25 / 60 + 1e-9


async def test_a_process_starts_from_the_limits_another_learnt(make: Make) -> None:
    a, b = make("a"), make("b", limits=None)
    a.want(11)
    await asyncio.sleep(0)
    await beat_all(a, b)
    # Before b's first request, its buckets hold its floor of the account's limits a
    # knows: that request is held to b's share, not sent unchecked.
    buckets = b.governor.models[MODEL].buckets
    assert {k: bk.limit_per_min for k, bk in buckets.items()} == {
        "requests": 600, "input": 60_000, "output": 30_000}
    # It holds no more than a leaves it: a gives up the floor at its next beat, and b
    # takes it at its own.
    assert buckets["requests"].capacity <= 600 * RESERVE / 2
    await beat_all(a, b)
    assert a.share() + b.share() == pytest.approx(1.0)
    assert b.share() == pytest.approx(RESERVE / 2)


async def test_rows_are_on_the_database_clock(dsn: str) -> None:
    store = open_store(dsn)
    try:
        rows = R.heartbeat(store, "p", host="h", pid=1, wanted={"": (0.0, 0.0, 0.0)},
                           limits={}, decide=lambda rows: {})
        assert [(r.process, r.model, r.age_s < 5) for r in rows] == [("p", "", True)]
        R.leave(store, "p")
        assert R.live(store) == []
    finally:
        store.close()


def test_a_process_gone_from_this_host_holds_nothing_from_the_next_beat(dsn: str) -> None:
    """A process killed on this host (its pid dead) holds no share from the next beat of
    anyone, though its row was beaten a moment ago; one alive keeps it, and so does a
    row with no holder record (judged by its age alone, as before)."""
    store = open_store(dsn)
    child = subprocess.Popen(["sleep", "60"])
    try:
        me = this_identity()
        dead = dataclasses.replace(me, pid=child.pid, pid_start=_start_ticks(child.pid))
        store.register_holder("dead", dead)
        R.join(store, "alive")
        wanted = {"": (0.0, 0.0, 0.0), MODEL: (60.0, 0.0, 0.0)}
        for name in ("dead", "alive", "unrecorded"):
            R.heartbeat(store, name, host=me.host, pid=child.pid, wanted=wanted,
                        limits={}, decide=lambda rows: {})
        assert {r.process for r in R.live(store)} == {"dead", "alive", "unrecorded"}
        child.kill()
        child.wait()
        assert {r.process for r in R.live(store)} == {"alive", "unrecorded"}
        R.leave(store, "alive")
        with store.engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(S.holders).where(
                S.holders.c.id == "alive")) == 0
    finally:
        child.kill()
        store.close()


def _start_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rpartition(")")[2].split()[19])


def test_sharing_is_on_with_workers_or_postgresql() -> None:
    assert not sharing_wanted("x.db", workers=1, share=None)
    assert sharing_wanted("x.db", workers=2, share=None)
    assert sharing_wanted("postgresql://u@h/db", workers=1, share=None)
    assert not sharing_wanted("postgresql://u@h/db", workers=4, share=False)
    assert sharing_wanted("x.db", workers=1, share=True)


# -- end to end: laneway serve processes --------------------------------------------------
LANEWAY = str(Path(sys.executable).with_name("laneway"))
RPM = 120
WARM_UP_S, WINDOW_S = 8.0, 30.0


def serve_env(upstream: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return {**env, "ANTHROPIC_BASE_URL": upstream, "COLUMNS": "200"}


@contextlib.contextmanager
def serving(upstream: str, cwd: Path, *args: str, copies: int = 1) -> Iterator[list[str]]:
    """``copies`` of ``laneway serve ARGS``, each on a free port, until the block ends;
    yields their URLs."""
    ports = [free_port() for _ in range(copies)]
    procs = [subprocess.Popen([LANEWAY, "serve", "--port", str(port), "--provider",
                               "anthropic", "--model", MODEL, *args], cwd=cwd,
                              env=serve_env(upstream), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for proc, url in zip(procs, urls, strict=True):
            for _ in range(600):
                if proc.poll() is not None:
                    raise AssertionError(f"laneway serve exited: {proc.communicate()[1]}")
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()


async def keep_busy(urls: list[str], seconds: float, answered: Counter[str]) -> None:
    """Ten requests at a time waiting at each gateway, through the official SDK."""
    stop_at = time.monotonic() + seconds

    async def one_client(url: str) -> None:
        async with anthropic.AsyncAnthropic(base_url=url, api_key="any",
                                            max_retries=0, timeout=120) as client:
            async def loop() -> None:
                while time.monotonic() < stop_at:
                    await client.messages.create(
                        model=MODEL, max_tokens=8,
                        messages=[{"role": "user", "content": "hello"}])
                    answered[url] += 1

            await asyncio.gather(*(loop() for _ in range(10)))

    await asyncio.gather(*(one_client(u) for u in urls))


@pytest.mark.timing
@pytest.mark.postgres
@pytest.mark.local_config(rpm=RPM)
def test_two_gateway_processes_share_one_limit(local_api: RunningLocal, pg_server: str,
                                               tmp_path: Path) -> None:
    name, dsn = pgserver.new_schema(pg_server)
    stats = local_api.api.stats
    answered: Counter[str] = Counter()
    window_429s: list[int] = []
    try:
        with serving(local_api.base_url, tmp_path, "--db", dsn, copies=2) as (a, b):

            async def drive() -> tuple[int, float, Counter[str]]:
                busy = asyncio.create_task(keep_busy([a, b], WARM_UP_S + WINDOW_S,
                                                     answered))
                await asyncio.sleep(WARM_UP_S)  # limits learnt, shares found
                ok, t0, before = stats["ok"], time.monotonic(), Counter(answered)
                refused, sent = stats["rate_limited"], stats["requests"]
                await asyncio.sleep(WINDOW_S)
                ok, elapsed = stats["ok"] - ok, time.monotonic() - t0
                window_429s[:] = [stats["rate_limited"] - refused, stats["requests"] - sent]
                in_window = Counter(answered)
                in_window.subtract(before)
                busy.cancel()  # the requests still waiting: their clients leave
                with contextlib.suppress(asyncio.CancelledError):
                    await busy
                return ok, elapsed, in_window

            ok, elapsed, in_window = asyncio.run(drive())
            report = httpx.get(a + "/v1/laneway/traffic").json()
    finally:
        pgserver.drop_schema(pg_server, name)
    # Together within the limit once it is learnt (the warm-up is when two processes
    # that know nothing yet find it): the upstream said 429 to at most 1% of the
    # requests of the window.
    refused, sent = window_429s
    assert refused <= 0.01 * sent, (window_429s, stats)
    # ... and together they used most of it (the benchmark measures 95%).
    allowed = RPM * elapsed / 60.0
    assert ok >= 0.9 * allowed, (ok, allowed, stats)
    # Both served, as much as each other: the limit was shared, not taken by one.
    assert min(in_window[a], in_window[b]) >= 0.3 * sum(in_window.values()), in_window
    assert report["processes"] == 2 and report["process"]
    share = report["limits"][MODEL]["buckets"]["requests"]["share"]
    assert 0.0 < share < 1.0 and report["limits"][MODEL]["buckets"]["requests"]["limit"] == RPM


def test_serve_workers_share_one_sqlite_ledger(local_api: RunningLocal,
                                               tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with serving(local_api.base_url, tmp_path, "--db", str(db), "--workers", "2") as (url,):
        client = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0)
        for i in range(6):
            client.messages.create(model=MODEL, max_tokens=8,
                                   messages=[{"role": "user", "content": f"hi {i}"}])
        store = open_store(str(db))
        try:
            for _ in range(100):  # both workers beat within a second or so
                processes = {r.process for r in R.live(store)}
                if len(processes) == 2:
                    break
                time.sleep(0.1)
            assert len(processes) == 2, processes
            assert len({r.pid for r in R.live(store)}) == 2
        finally:
            store.close()
        # The runs API from any worker: a run started through one is read through all.
        lines = "".join(json.dumps({"id": f"j{i}", "prompt": f"say {i}"}) + "\n"
                        for i in range(5))
        made = httpx.post(url + "/v1/runs", content=lines, timeout=30,
                          headers={"content-type": "application/x-ndjson"})
        assert made.status_code == 201, made.text
        run_id = made.json()["id"]
        for _ in range(200):
            seen = [httpx.get(f"{url}/v1/runs/{run_id}", timeout=10,
                              headers={"connection": "close"}).json() for _ in range(4)]
            if all(s["done"] == 5 for s in seen):
                break
            time.sleep(0.1)
        assert all(s["done"] == 5 and s["succeeded"] == 5 for s in seen), seen
    # A clean stop takes the workers' rows away: their shares go to whoever is left.
    store = open_store(str(db))
    try:
        assert R.live(store) == []
    finally:
        store.close()


def test_serve_workers_on_a_ledger_that_cannot_open_is_one_line(tmp_path: Path) -> None:
    bad = "postgresql://nobody@127.0.0.1:1/none"
    proc = subprocess.run([LANEWAY, "serve", "--workers", "2", "--db", bad,
                           "--port", str(free_port()), "--provider", "anthropic"],
                          cwd=tmp_path, env=serve_env("http://127.0.0.1:9"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("laneway: error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr


class AwayBoard:
    """A ledger that cannot be reached."""

    async def exchange(self, wanted: object, limits: object, decide: object) -> list[R.ShareRow]:
        raise ConnectionError("the ledger is away")

    async def leave(self) -> None:
        raise ConnectionError("the ledger is away")


async def test_beats_that_fail_keep_the_share_then_fall_to_the_floor() -> None:
    now = [1000.0]
    governor = Governor(limits=LIMITS, clock=lambda: now[0])
    hold_share(governor, MODEL, "requests", 0.6)
    failed = asyncio.Event()
    notices: list[str] = []

    def notice(msg: str) -> None:
        notices.append(msg)
        failed.set()

    sync = ShareSync(governor, AwayBoard(), process="a", interval_s=0.01, live_s=5.0,
                     reserve=RESERVE, on_notice=notice)
    sync.processes = 2
    sync._last_ok = now[0]  # the last beat that worked: now
    task = asyncio.create_task(sync.run())

    async def next_failure() -> None:
        failed.clear()
        await failed.wait()

    await next_failure()
    now[0] += 3.0  # failing, but the others still count it live: it keeps its share
    await next_failure()
    assert governor.models[MODEL].buckets["requests"].share == 0.6
    now[0] += 3.0  # past live_s: the others took its share
    await next_failure()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert governor.models[MODEL].buckets["requests"].share == pytest.approx(RESERVE / 2)
    assert governor.default_share == pytest.approx(RESERVE / 2)
    assert "ledger is away" in notices[0]
    await sync.leave()  # a clean stop with the ledger away: no error


async def test_a_429_in_one_process_pauses_the_others(dsn: str) -> None:
    stores = [AsyncStore(open_store(dsn)) for _ in range(2)]
    governors = [Governor(limits=LIMITS) for _ in range(2)]
    sharings = [QuotaSharing() for _ in range(2)]
    try:
        for sharing, astore, governor in zip(sharings, stores, governors, strict=True):
            await sharing.start(astore, governor)
        permit = governors[0].try_acquire(Lane.BACKGROUND, MODEL, input_tokens=10,
                                          max_tokens=10)
        assert permit is not None
        governors[0].release(permit, outcome="rate_limited", retry_after_s=30.0)
        assert sharings[0].pauses is not None and sharings[1].pauses is not None
        await sharings[0].pauses.aclose()  # published
        await sharings[1].pauses.poll()  # (or its own loop did, a moment ago)
        assert sharings[1].pauses.applied == 1
        assert governors[1].snapshot()[MODEL]["paused_s"] > 20
    finally:
        for sharing, astore in zip(sharings, stores, strict=True):
            await sharing.stop()
            astore.close()
            astore.store.close()


@pytest.mark.postgres
async def test_a_beat_waiting_its_turn_does_not_hold_up_the_other_ledger_calls(
        pg: str) -> None:
    """Beats are one at a time across the fleet (an advisory lock): while this process's
    beat waits for another's, its other ledger calls (here a key check, as a gateway
    request's) are answered at once, not queued behind the beat."""
    import psycopg

    astore = AsyncStore(open_store(pg))
    key, secret = await astore.create_key("k", rpm=600)
    sharing = QuotaSharing(interval_s=0.1)
    await sharing.start(astore, Governor(limits=LIMITS))
    try:
        with psycopg.connect(pg) as other:  # another process's beat, taking its time
            other.execute("SELECT pg_advisory_xact_lock(%s)", (R._LOCK,))
            await asyncio.sleep(0.5)  # this process's next beat waits for it now
            beats = sharing.shares.beats if sharing.shares else 0
            started = time.monotonic()
            try:
                found, wait_s = await asyncio.wait_for(astore.check_key(secret), 3.0)
            finally:
                other.rollback()
            took = time.monotonic() - started
        assert found is not None and found.id == key.id and wait_s is None
        assert took < 1.0, f"a key check waited {took:.2f} s behind a beat"
        assert sharing.shares is not None and sharing.shares.beats == beats  # it waited
    finally:
        await sharing.stop()
        astore.close()
        astore.store.close()


@pytest.mark.postgres
async def test_a_beat_that_raises_no_grant_takes_no_lock(pg: str) -> None:
    """While another process's beat holds the beat lock, a beat that keeps (or lowers)
    its grants is done at once; one that would raise a grant waits for the lock."""
    import psycopg

    store = open_store(pg)
    mine = {"": (0.0, 0.0, 0.0), MODEL: (60.0, 0.0, 0.0)}

    def beat(grant: float) -> list[R.ShareRow]:
        return R.heartbeat(store, "p", host="h", pid=1, wanted=mine, limits={},
                           decide=lambda _rows: {MODEL: (grant, grant, grant)})

    beat(0.5)  # its grant is 0.5
    with psycopg.connect(pg) as other, ThreadPoolExecutor(1) as pool:
        other.execute("SELECT pg_advisory_xact_lock(%s)", (R._LOCK,))
        started = time.monotonic()
        kept = await asyncio.wait_for(asyncio.wrap_future(pool.submit(beat, 0.5)), 3.0)
        lowered = await asyncio.wait_for(asyncio.wrap_future(pool.submit(beat, 0.3)), 3.0)
        assert time.monotonic() - started < 1.0
        raised = pool.submit(beat, 0.6)
        await asyncio.sleep(0.5)
        assert not raised.done()  # it waits its turn
        other.rollback()
        rows = await asyncio.wait_for(asyncio.wrap_future(raised), 5.0)
    own = {r.model: r.granted for r in (*kept, *lowered) if r.process == "p"}
    assert own[MODEL] == (0.3, 0.3, 0.3)
    assert [r.granted for r in rows if r.model == MODEL] == [(0.6, 0.6, 0.6)]
    store.close()
