"""How long a claim lasts, who holds it, and a heartbeat that keeps a worker's leases
while it lives.

See :func:`lease_s`, :func:`new_worker_id` and :class:`LeaseKeeper`; the leases themselves
are in :mod:`laneway.store.queue`.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

from laneway.errors import ConfigError
from laneway.store.holders import mint
from laneway.store.ledger import Store

#: The environment variable that sets a claim's lease, in seconds.
LEASE_ENV = "LANEWAY_LEASE_S"
DEFAULT_LEASE_S = 300.0


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name``, or ``default``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: not a number of seconds") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r}: must be more than 0 seconds")
    return value


def new_worker_id(prefix: str = "") -> str:
    """``host-pid-random`` (after ``prefix``): unique among workers, and says where a
    claim came from. Minted for this process: the ledger records where it runs the first
    time it holds something (see :mod:`laneway.store.holders`)."""
    host = socket.gethostname().split(".")[0][:60] or "host"
    return mint(f"{prefix}{host}-{os.getpid()}-{secrets.token_hex(3)}")


def lease_s() -> float:
    """A claim's lease (``$LANEWAY_LEASE_S``, default 300 s): how long jobs held by a
    process that died wait before another process takes them. A live process renews
    its leases every third of it, however long it waits (a 429's retry-after included).
    """
    return env_seconds(LEASE_ENV, DEFAULT_LEASE_S)


class LeaseKeeper:
    """Renews this worker's leases from a thread of its own.

    The runner renews the leases of the jobs it holds from the event loop; a loop that
    is late (a starved CPU, a slow first request importing half the SDK) would let them
    run out while the worker is alive, and another worker would send the same jobs
    again (recorded once, but paid twice). This heartbeat keeps them while the process
    lives and its loop still makes progress (:meth:`beat` within ``stall_s``); a dead
    or wedged worker stops renewing, and its jobs go to the others.
    """

    def __init__(self, store: Store, *, worker: str, lease_s: float,
                 stall_s: float | None = None) -> None:
        self.store = store
        self.worker = worker
        self.lease_s = lease_s
        self.stall_s = stall_s if stall_s is not None else max(60.0, 3 * lease_s)
        #: The run whose leases to renew (the one the worker is on), if any.
        self.run_id: str | None = None
        self.renewals = 0
        self._beat = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="laneway-leases",
                                        daemon=True)

    def beat(self) -> None:
        """Called from the event loop: it is making progress."""
        self._beat = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            run_id = self.run_id
            if run_id is None or time.monotonic() - self._beat > self.stall_s:
                continue
            try:
                self.store.renew_leases(run_id, worker=self.worker, lease_s=self.lease_s)
                self.renewals += 1
            except Exception:  # the ledger is away; the runner's own renewals may work
                continue
