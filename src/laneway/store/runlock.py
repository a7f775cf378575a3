"""Who may work on a run: one process per run on SQLite, one ingest at a time anywhere.

A SQLite ledger belongs to one process per run: its claims are all the worker ``main``'s,
and a second process on the same run would release them at start and send the same
jobs again. :func:`hold_run` takes an exclusive ``flock`` on a small file next to the
database (``laneway.db.run-<hash>.lock``, holding ``pid@host``), kept until the run
ends; a second process is refused with one line naming the process that holds the run.
The kernel drops the lock when its process dies, so a killed run never blocks the
next one. On PostgreSQL, where workers join a run with distinct ids, there is no lock.

:func:`ingest_lock` serialises ingests of one run on PostgreSQL (two ``laneway run
--no-work`` of the same new file at once): the second waits, then sees the first's
progress and writes nothing twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import text

from laneway.errors import StoreError
from laneway.store.ledger import Store
from laneway.store.settings import StoreSettings


def lock_path(settings: StoreSettings, run_id: str) -> Path | None:
    """The lock file of ``run_id`` in a SQLite ledger (None on PostgreSQL)."""
    if settings.kind != "sqlite" or settings.path is None:
        return None
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return settings.path.with_name(f"{settings.path.name}.run-{digest}.lock")


def holder() -> str:
    """This process, as a lock file names it: ``pid@host``."""
    return f"{os.getpid()}@{socket.gethostname()}"


class RunLock:
    """An exclusive hold on one run of a SQLite ledger; :meth:`release` ends it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Remove the file, then unlock (a process that opened the old file finds it
        gone and tries again on a new one). Safe to call twice."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None


def hold_run(settings: StoreSettings, run_id: str) -> RunLock | None:
    """Take ``run_id`` for this process (None on PostgreSQL: no lock is needed).

    Raises :class:`StoreError` naming the process (pid and host) that holds it.
    """
    path = lock_path(settings, run_id)
    if path is None:
        return None
    for _ in range(100):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot lock run {run_id!r} ({path}): {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read(fd)
            os.close(fd)
            raise StoreError(
                f"run {run_id!r} is being worked on by another laneway process "
                f"({_describe(owner)}): wait for it to finish, or stop it and run the "
                "same command again") from None
        # The holder before us may have removed the file just before we locked it.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{holder()} {run_id}\n".encode(), 0)
        return RunLock(path, fd)
    raise StoreError(f"cannot lock run {run_id!r} ({path}): it keeps being replaced")


def _read(fd: int) -> str:
    try:
        return os.pread(fd, 4096, 0).decode(errors="replace").split(" ", 1)[0].strip()
    except OSError:
        return ""


def _describe(owner: str) -> str:
    pid, at, host = owner.partition("@")
    if not at or not pid.isdigit():
        return "its lock file does not say which"
    return f"pid {pid} on host {host}"


@contextlib.contextmanager
def ingest_lock(store: Store, run_id: str) -> Iterator[None]:
    """Hold the ingest of ``run_id`` on PostgreSQL; on SQLite :func:`hold_run` already does.

    A transaction-level advisory lock in a transaction kept open for the whole ingest, on
    a connection of its own: released when the transaction ends or the connection dies,
    and safe behind a pooler in transaction mode (the open transaction keeps one server
    connection; a session-level lock could be taken on one and never released). A second
    ingest tries every 0.2 s and holds no server connection between tries (a waiter
    blocked in a pool of two would starve the holder's own writes).
    """
    if not store.is_postgres:
        yield
        return
    key = int.from_bytes(hashlib.sha256(f"ingest:{run_id}".encode()).digest()[:8],
                         "big", signed=True)
    with store.engine.connect() as conn:
        while not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"),
                               {"k": key}).scalar():
            conn.rollback()
            time.sleep(0.2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                conn.rollback()
