"""A private PostgreSQL for ``bench/capacity.py``: durable (fsync and synchronous_commit
on), every statement logged with its time and backend pid, and its backends' CPU.

    server = DurablePostgres.start(log_all=True)
    ... statements(server, since, until) -> [Logged]
    server.cpu_s()   # utime + stime of the postmaster's children, seconds
    server.stop()
"""

from __future__ import annotations

import datetime
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))  # pgserver: a test server

import pgserver

_TICK = os.sysconf("SC_CLK_TCK")
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) \S+\|(\d+)\|(.*)$")
_STMT = re.compile(r"^LOG:  (?:statement|execute [^:]*): (.*)$")


@dataclass(frozen=True, slots=True)
class Logged:
    at: float
    pid: int
    sql: str


def start(*, log_all: bool, stat_statements: bool = False) -> pgserver.TempPostgres:
    """A private cluster with fsync, synchronous_commit and full_page_writes on (the
    defaults), 800 connections; every statement logged when ``log_all``; with
    ``stat_statements``, pg_stat_statements (COMMITs and lock calls included)."""
    server = pgserver.TempPostgres.start(fast=False)
    server.down()
    server.options = server.options.replace("max_connections=200", "max_connections=800")
    server.options += " -c shared_buffers=128MB"
    if log_all:
        server.options += (" -c log_statement=all -c log_line_prefix='%m|%p|'"
                           " -c log_min_error_statement=panic -c log_timezone=UTC")
    if stat_statements:
        server.options += (" -c shared_preload_libraries=pg_stat_statements"
                           " -c pg_stat_statements.track_utility=on -c track_wal_io_timing=on")
    server.up()
    pgserver.wait_ready(server.dsn)
    if stat_statements:
        import psycopg

        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    return server


def statements(server: pgserver.TempPostgres, since: float, until: float) -> list[Logged]:
    """The statements logged between ``since`` and ``until`` (Unix seconds)."""
    out: list[Logged] = []
    current: list[str] | None = None
    head: tuple[float, int] | None = None
    for line in (server.root / "log").read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if m is None:
            if current is not None and line.startswith("\t"):
                current.append(line.strip())
            continue
        if current is not None and head is not None:
            out.append(Logged(head[0], head[1], " ".join(current)))
        current = head = None
        at = datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(
            tzinfo=datetime.UTC).timestamp()
        s = _STMT.match(m.group(3))
        if s is not None and since <= at <= until:
            current, head = [s.group(1)], (at, int(m.group(2)))
    if current is not None and head is not None:
        out.append(Logged(head[0], head[1], " ".join(current)))
    return out


def backend_pids(server: pgserver.TempPostgres) -> list[int]:
    """Every process of the cluster: the postmaster and its children."""
    pid_file = server.root / "data" / "postmaster.pid"
    master = int(pid_file.read_text().split()[0])
    kids = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [master, *(int(k) for k in kids)]


def cpu_s(server: pgserver.TempPostgres) -> float:
    """CPU seconds the cluster used so far: its live processes' utime + stime, and the
    postmaster's children that ended (cutime + cstime)."""
    total = 0.0
    for i, pid in enumerate(backend_pids(server)):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
        if i == 0:
            total += int(fields[13]) + int(fields[14])
    return total / _TICK
