"""The gateway's start interrupts what gone processes left reserved, judging each row's
process by its ``holders`` row (:func:`laneway.store.holders.is_gone`): a pid that now
belongs to another process (same pid, another start time) is gone; a live process on
another host is not, until its time in flight runs out (issue 29)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import time

from sqlalchemy import select

from laneway.server.gateway.pipeline import MAX_FLIGHT_S, dead_process, this_process
from laneway.store import Store
from laneway.store import schema as S
from laneway.store.holders import this_identity
from laneway.store.reservations import INTERRUPTED, RESERVED

from .test_holders import _start_ticks
from .test_reservations import res


def _states(store: Store, rows: dict[str, int | None]) -> dict[str, str]:
    r = S.gateway_requests.c
    with store.engine.connect() as conn:
        states = {int(i): str(s) for i, s in conn.execute(select(r.id, r.state))}
    return {name: states[row] for name, row in rows.items() if row is not None}


def test_a_reused_pid_is_gone_a_live_process_elsewhere_is_not(store: Store) -> None:
    key, _ = store.create_key("k", budget_usd=10.0)
    host = socket.gethostname()
    me = this_process()
    child = subprocess.Popen(["sleep", "60"])
    try:
        live = dataclasses.replace(this_identity(), pid=child.pid,
                                   pid_start=_start_ticks(child.pid))
        who = {
            # A process that died, whose pid the kernel gave to another (the child).
            "reused": dataclasses.replace(live, pid_start=live.pid_start + 1),
            "live": live,
            "elsewhere": dataclasses.replace(live, host="elsewhere", pid=2 ** 22 + 7),
            "me": this_identity(),
        }
        names = {"reused": f"{host}:{child.pid}:dead", "live": f"{host}:{child.pid}:live",
                 "elsewhere": "elsewhere:12345:far", "me": me}
        for name, identity in who.items():
            store.register_holder(names[name], identity)
        rows = {name: store.reserve(res(key.id, 1.0, process=process))
                for name, process in names.items()}
        # No holders row: a laneway before this one, or a process that ended or was
        # found gone (its row removed); a row in flight too long, whoever holds it.
        rows["unknown"] = store.reserve(res(key.id, 1.0, process=f"{host}:{child.pid}:x"))
        rows["too_long"] = store.reserve(res(key.id, 1.0, process=names["elsewhere"],
                                             at=time.time() - MAX_FLIGHT_S - 1))
        assert all(r is not None for r in rows.values())
        n = store.interrupt_requests(dead_process(me, time.time()))
        assert _states(store, rows) == {
            "reused": INTERRUPTED, "live": RESERVED, "elsewhere": RESERVED, "me": RESERVED,
            "unknown": INTERRUPTED, "too_long": INTERRUPTED}
        assert n == 3
        k = store.key_by_id(key.id)
        assert k is not None and (k.reserved_usd, k.held_usd) == (3.0, 3.0)
    finally:
        child.kill()
        child.wait()
