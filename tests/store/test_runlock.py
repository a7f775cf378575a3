"""One process per run on a SQLite ledger: the lock file next to the database."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from laneway.errors import StoreError
from laneway.store import StoreSettings
from laneway.store.runlock import hold_run, lock_path


def test_a_held_run_is_refused_naming_its_holder(tmp_path: Path) -> None:
    settings = StoreSettings.from_dsn(tmp_path / "l.db")
    lock = hold_run(settings, "r1")
    assert lock is not None and lock.path.parent == tmp_path
    assert lock.path.read_text().startswith(f"{os.getpid()}@{socket.gethostname()} r1")
    with pytest.raises(StoreError, match=rf"run 'r1' is being worked on by another laneway "
                                         rf"process \(pid {os.getpid()} on host "):
        hold_run(settings, "r1")
    other = hold_run(settings, "r2")  # another run of the same ledger is free
    assert other is not None
    lock.release()
    lock.release()  # twice is fine
    assert not lock.path.exists()
    again = hold_run(settings, "r1")
    assert again is not None
    again.release()
    other.release()


def test_postgres_needs_no_lock() -> None:
    settings = StoreSettings.from_dsn("postgresql://u@h/db")
    assert lock_path(settings, "r") is None and hold_run(settings, "r") is None
