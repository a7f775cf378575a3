"""The ledger from async code: calls on one thread, and results committed in groups.

:class:`AsyncStore` runs :class:`~laneway.store.ledger.Store` methods on a single
worker thread, so the event loop never waits on the database (typed as coroutines by
:class:`~laneway.store.async_ledger.AsyncLedger`). :class:`GroupWriter` collects
finished jobs and commits them together, every ``interval_s`` or ``max_items``;
``await writer.record(item)`` returns only once the item is committed, so a result is
never counted before it is durable. On PostgreSQL every call rides out an outage of the
database (see :mod:`laneway.store.outage`); on SQLite a commit that fails (a locked
file) is tried again for about 13 s. A commit that fails for good (a full disk:
:class:`~laneway.errors.DiskFullError`, at once) fails every waiter, and every later
``submit``, with that error: nobody waits for a writer that is gone, and
:meth:`GroupWriter.close` raises it.

On SQLite a group is committed on the event loop's own thread when it can be without
waiting (:meth:`AsyncStore.finish_here`): a WAL commit with ``synchronous=NORMAL`` is a
write into the page cache (~0.1 ms), less than handing it to the thread and back costs
(~0.2 ms of CPU, and ~0.5 ms before the waiting workers may send again: at a low
concurrency, where every worker waits for its result to be durable before its next
request, that was a third of the run). Its connection never waits: no lock (another
connection writing: the group goes through the thread, as every group does on
PostgreSQL), no checkpoint (the thread checkpoints the WAL, passively, every
:data:`CHECKPOINT_EVERY` such commits). It is exactly as durable as a commit on the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool

from laneway.store.async_gateway import GatewayCalls
from laneway.store.async_ledger import AsyncLedger
from laneway.store.diskfull import disk_full_error, is_disk_full
from laneway.store.ledger import Store
from laneway.store.outage import outage_s, ride_out
from laneway.store.queue import Finished

P = ParamSpec("P")
T = TypeVar("T")


class AsyncStore(AsyncLedger, GatewayCalls):
    """The store from async code (see the module's docstring): typed calls for runs and
    jobs (:class:`~laneway.store.async_ledger.AsyncLedger`) and for the gateway's client
    keys and traffic (:class:`~laneway.store.async_gateway.GatewayCalls`)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: How long a PostgreSQL outage is ridden out (read now: a bad value fails at once).
        self.outage_s = outage_s() if store.is_postgres else 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="laneway-store")
        #: SQLite: the connection :meth:`finish_here` commits on, and the thread it is for.
        self._here: Connection | None = None
        self._here_thread: int | None = None
        self._here_commits = 0
        #: SQLite: the store :meth:`call_here` runs methods on, and the thread it is for.
        self._calls_here: tuple[Store, int] | None = None

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        job = functools.partial(fn, *args, **kwargs)
        if not self.store.is_postgres:
            return await loop.run_in_executor(self._executor, job)
        return await ride_out(lambda: loop.run_in_executor(self._executor, job),
                              where=str(self.store.settings), budget_s=self.outage_s)

    def finish_here(self, items: Sequence[Finished]) -> list[int] | None:
        """``Store.finish`` in the calling thread, on SQLite, if it needs no wait (see the
        module's docstring); None when it cannot be (PostgreSQL, another thread than the
        first caller's, or the write lock held by another connection): nothing written."""
        if self.store.is_postgres or self._here_thread not in (None, threading.get_ident()):
            return None
        conn = self._here if self._here is not None else self._open_here()
        try:
            recorded = self.store.finish(items, on=conn)
        except OperationalError as exc:
            if _sqlite_code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
                return None
            raise
        self._committed_here()
        return recorded

    async def call_here(self, fn: Callable[Concatenate[Store, P], T], *args: P.args,
                        **kwargs: P.kwargs) -> T:
        """``fn(store, ...)`` (a :class:`Store` method's own transactions) on the calling
        thread, on SQLite, when it needs no wait: on a connection of its own that never
        waits for a lock (``busy_timeout=0``) nor checkpoints, as :meth:`finish_here`
        commits; through the store's thread (:meth:`call`) when it cannot be (PostgreSQL,
        another thread, the write lock held elsewhere: its transaction was rolled back).
        For the gateway's statements on every request: two hand-offs to the thread and
        back cost more than the statements."""
        here = self._here_store_for_this_thread()
        if here is not None:
            try:
                result = fn(here, *args, **kwargs)
            except OperationalError as exc:
                if _sqlite_code(exc) not in (_SQLITE_BUSY, _SQLITE_LOCKED):
                    raise
            else:
                self._committed_here()
                return result
        return await self.call(fn, self.store, *args, **kwargs)

    def _here_store_for_this_thread(self) -> Store | None:
        settings = self.store.settings
        if self.store.is_postgres or settings.path is None:
            return None
        if self._calls_here is None:
            engine = create_engine(settings.url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False, "timeout": 0})
            event.listen(engine, "connect", _never_waits)
            self._calls_here = (Store(engine, settings), threading.get_ident())
        here, thread = self._calls_here
        return here if thread == threading.get_ident() else None

    def _committed_here(self) -> None:
        self._here_commits += 1
        if self._here_commits % CHECKPOINT_EVERY == 0:
            self._executor.submit(self._checkpoint)

    def _open_here(self) -> Connection:
        conn = self.store.engine.connect()
        conn.detach()  # its own: these settings never reach the pool's connections
        conn.exec_driver_sql("PRAGMA busy_timeout=0")
        conn.exec_driver_sql("PRAGMA wal_autocheckpoint=0")
        conn.commit()
        self._here, self._here_thread = conn, threading.get_ident()
        return conn

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without waiting for anyone (on the thread)."""
        with contextlib.suppress(Exception), self.store.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if self._here is not None:
            self._here.close()
            self._here = None
        if self._calls_here is not None:
            self._calls_here[0].close()
            self._calls_here = None
        self._executor.shutdown(wait=True)


#: Commits on the loop's own connection between two checkpoints of the WAL (a few pages
#: each: SQLite's own default is a checkpoint once the WAL has 1,000 pages).
CHECKPOINT_EVERY = 200
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _never_waits(dbapi_conn: Any, _record: Any) -> None:
    """:meth:`AsyncStore.call_here`'s connection: as the store's (WAL, NORMAL, foreign
    keys), but it never waits for a lock and never checkpoints (the thread does)."""
    cur = dbapi_conn.cursor()
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=0",
                   "foreign_keys=ON", "wal_autocheckpoint=0"):
        cur.execute(f"PRAGMA {pragma}")
    cur.close()


def _sqlite_code(exc: OperationalError) -> int | None:
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


class GroupWriter:
    def __init__(self, astore: AsyncStore, *, interval_s: float = 0.02,
                 max_items: int = 512, retries: int = 6) -> None:
        self.astore = astore
        self.retries = retries
        self.interval_s = interval_s
        self.max_items = max_items
        self._pending: list[tuple[Finished, asyncio.Future[bool]]] = []
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        #: Why the writer stopped for good (every later item fails with it), if it did.
        self.error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The committing task (it ends with an error when the ledger is lost for good)."""
        return self._task

    async def record(self, item: Finished) -> bool:
        """Commit ``item`` (with others); True if it was recorded, False if already final."""
        return await self.submit(item)

    def submit(self, item: Finished) -> asyncio.Future[bool]:
        """Queue ``item`` for the next group commit; the future resolves once committed."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            fut.set_exception(self.error)
            return fut
        self._pending.append((item, fut))
        # Wake the writer now: what arrives while it commits forms the next group, so
        # groups stay large under load and nobody waits for a timer when it is quiet.
        self._wake.set()
        return fut

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        try:
            recorded = set(await self._finish([item for item, _ in batch]))
        except BaseException as exc:
            if isinstance(exc, Exception):
                self.error = disk_full_error(
                    exc, f"the ledger {self.astore.store.settings} cannot record results") or exc
            # Fail everyone waiting, not only this group: the writer does not go on.
            batch, self._pending = batch + self._pending, []
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(self.error if self.error is not None else exc)
            raise
        self.commits += 1
        for item, fut in batch:
            # An item repeated in one group is recorded (and counted) once: the first.
            first = item.seq in recorded
            recorded.discard(item.seq)
            if not fut.done():
                fut.set_result(first)

    async def _finish(self, items: list[Finished]) -> list[int]:
        """``Store.finish``, tried again while the database is unreachable (a PostgreSQL
        restart, a network blip): the results are paid for, and recording is idempotent."""
        for attempt in range(self.retries + 1):
            try:
                if attempt == 0:  # on this thread, if it needs no wait (SQLite)
                    recorded = self.astore.finish_here(items)
                    if recorded is not None:
                        return recorded
                return await self.astore.finish(items)
            except OperationalError as exc:
                if attempt == self.retries or is_disk_full(exc):
                    raise  # a full disk stays full: stop now, not in 13 s
                await asyncio.sleep(min(0.25 * 2 ** attempt, 5.0))
        raise AssertionError("unreachable")

    async def _loop(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            self._wake.clear()
            try:
                await self._flush()
            except Exception:  # kept in self.error: close() raises it
                return
        await self._flush()

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self.error is not None:
            raise self.error
        await self._flush()


