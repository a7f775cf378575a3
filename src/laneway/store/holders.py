"""Who holds a claim, and whether that process is gone: so a restarted process takes up
what a dead one held at once, not after its lease.

A worker id this process minted (:func:`mint`) is recorded in the ``holders`` table the
first time it takes hold of something (a job claim, a native batch), with where it runs:
its host, its PID namespace, its pid and the pid's start time, and the host's boot id
(``/proc/sys/kernel/random/boot_id``). A holder is **gone** (:func:`is_gone`) when it
ran on this host (same name) and the host has booted since (another boot id), or, in the
same PID namespace, its pid is no longer running (or is a zombie, or is another process
that reuses the pid: its start time differs). A holder on another host (or in another
container of this one) is never judged here: its leases, timed by the database's clock,
say when it is gone.

:meth:`HolderLedger.reap_gone_holders` gives back what gone holders of this host held
(jobs ``pending`` again, native batches free to be owned) and forgets them; a process
calls it when it starts and while it waits for work. :meth:`HolderLedger.drop_holder`
does the same for an id of this process that stops holding (a clean end), so the next
process need not wait either, and :meth:`HolderLedger.drop_held` for every id a store
recorded (``laneway run``'s end: its row is not left behind).
"""

from __future__ import annotations

import functools
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, select, update

from laneway.store import schema as S
from laneway.store.statuses import JobStatus, RunStatus

_H = S.holders.c
#: The ids this process minted: only those are recorded as held by this process.
_MINTED: set[str] = set()


@dataclass(frozen=True, slots=True)
class Identity:
    """Where a process runs: enough to tell, from the same host, whether it lives."""

    host: str
    pid_ns: str
    pid: int
    #: The pid's start time (clock ticks since boot; 0: unknown).
    pid_start: int
    boot_id: str


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, start ticks)`` of a running pid from ``/proc`` (None: not there)."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw:
        return None
    fields = raw.rpartition(")")[2].split()
    try:
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def _host() -> str:
    return socket.gethostname()[:200] or "host"


@functools.cache
def _pid_ns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")[:64]
    except OSError:
        return ""


def this_identity() -> Identity:
    """This process (not cached whole: a forked child is another process)."""
    pid = os.getpid()
    stat = _stat(pid)
    return Identity(host=_host(), pid_ns=_pid_ns(), pid=pid,
                    pid_start=stat[1] if stat else 0,
                    boot_id=_read("/proc/sys/kernel/random/boot_id")[:64])


def mint(worker_id: str) -> str:
    """Record ``worker_id`` as one of this process's; returns it."""
    _MINTED.add(worker_id)
    return worker_id


def minted(worker_id: str) -> bool:
    return worker_id in _MINTED


def _alive(pid: int, pid_start: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    stat = _stat(pid)
    if stat is None:
        return True  # no /proc to look closer: it exists
    state, start = stat
    return state != "Z" and (not pid_start or start == pid_start)


def is_gone(holder: Identity, me: Identity) -> bool:
    """Whether ``holder`` is known, from this process ``me``, to run no more."""
    if holder.host != me.host:
        return False  # another host: only its leases tell
    if holder.boot_id and me.boot_id and holder.boot_id != me.boot_id:
        return True  # this host booted since: every process of it then is gone
    if holder.pid_ns != me.pid_ns:
        return False  # another container of this host: its pids are not ours to see
    if holder.pid == me.pid and holder.pid_start == me.pid_start:
        return False  # this very process
    return not _alive(holder.pid, holder.pid_start)


@dataclass(frozen=True, slots=True)
class Reaped:
    """What the gone holders held, now given back."""

    holders: int = 0
    jobs: int = 0
    batches: int = 0


#: The columns of a ``holders`` row that :func:`identity_of` reads.
HOLDER_COLUMNS = ("host", "pid_ns", "pid", "pid_start", "boot_id")


def identity_of(r: Any) -> Identity:
    """The :class:`Identity` of a row holding :data:`HOLDER_COLUMNS`."""
    return Identity(host=r["host"], pid_ns=r["pid_ns"] or "", pid=int(r["pid"]),
                    pid_start=int(r["pid_start"] or 0), boot_id=r["boot_id"] or "")


class HolderLedger:
    """The ``holders`` table; mixed into :class:`laneway.store.ledger.Store`."""

    engine: Engine
    _held_as: set[str]

    def note_holder(self, worker: str) -> None:
        """Record ``worker`` as this process, once, if this process minted it."""
        if worker in self._held_as or not minted(worker):
            return
        self.register_holder(worker, this_identity())
        self._held_as.add(worker)

    def register_holder(self, worker: str, who: Identity) -> None:
        """Record that ``worker`` is the process ``who`` (replacing an older record)."""
        with self.engine.begin() as conn:
            conn.execute(delete(S.holders).where(_H.id == worker))
            conn.execute(S.holders.insert().values(
                id=worker, host=who.host, pid_ns=who.pid_ns, pid=who.pid,
                pid_start=who.pid_start, boot_id=who.boot_id, since=time.time()))

    def reap_gone_holders(self) -> Reaped:
        """Give back what this host's gone holders held (see the module docstring)."""
        me = this_identity()
        with self.engine.connect() as conn:
            rows = conn.execute(select(S.holders).where(_H.host == me.host)).mappings().all()
        gone = [str(r["id"]) for r in rows if is_gone(identity_of(r), me)]
        total = Reaped()
        for worker in gone:
            jobs, batches = self._give_back(worker)
            total = Reaped(total.holders + 1, total.jobs + jobs, total.batches + batches)
        return total

    def drop_holder(self, worker: str) -> Reaped:
        """``worker`` (this process's) holds nothing more: give back what it still held."""
        self._held_as.discard(worker)
        jobs, batches = self._give_back(worker)
        return Reaped(1, jobs, batches)

    def drop_held(self) -> Reaped:
        """A clean end: every id recorded through this store (:meth:`note_holder`) holds
        nothing more; what they still held is given back and their rows removed."""
        total = Reaped()
        for worker in sorted(self._held_as):
            r = self.drop_holder(worker)
            total = Reaped(total.holders + 1, total.jobs + r.jobs, total.batches + r.batches)
        return total

    def _give_back(self, worker: str) -> tuple[int, int]:
        """What ``worker`` held becomes sendable again; its jobs of a canceled run become
        ``canceled`` instead (a cancel that ran before they were given back found them
        held, and a canceled run sends nothing more)."""
        j, b = S.jobs.c, S.batches.c
        now = time.time()
        canceled_runs = select(S.runs.c.id).where(S.runs.c.status == RunStatus.CANCELED)
        with self.engine.begin() as conn:
            canceled = conn.execute(update(S.jobs).where(
                j.status == JobStatus.CLAIMED, j.claimed_by == worker,
                j.run_id.in_(canceled_runs),
            ).values(status=JobStatus.CANCELED, result='{"type":"canceled"}',
                     claimed_by=None, lease_until=None, batch_id=None, mode="canceled",
                     updated_at=now, finished_at=now)).rowcount
            jobs = conn.execute(update(S.jobs).where(
                j.status == JobStatus.CLAIMED, j.claimed_by == worker,
            ).values(status=JobStatus.PENDING, claimed_by=None, lease_until=None,
                     updated_at=now)).rowcount
            batches = conn.execute(update(S.batches).where(b.claimed_by == worker).values(
                claimed_by=None, lease_until=None)).rowcount
            conn.execute(delete(S.holders).where(_H.id == worker))
        return int(jobs or 0) + int(canceled or 0), int(batches or 0)
