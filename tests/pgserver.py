"""A throwaway PostgreSQL server, for the test suite and the benchmarks.

:func:`find_postgres` gives a DSN to use: ``LANEWAY_TEST_PG`` if set, else a private
cluster started from Debian's binaries (``/usr/lib/postgresql/*/bin``) in a temporary
directory, on a free loopback port, with its socket in that directory. PostgreSQL
refuses to run as root, so as root the cluster is owned by and run as ``postgres``.
Nothing here is needed to *use* laneway with PostgreSQL; it only spares a person from
setting a server up to run the tests.

>>> server = TempPostgres.start()      # raises PostgresUnavailable with a reason
>>> server.dsn                         # 'postgresql://postgres@127.0.0.1:PORT/laneway'
>>> server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from laneway.errors import StoreError

ENV_DSN = "LANEWAY_TEST_PG"
DATABASE = "laneway"


class PostgresUnavailable(StoreError):
    """No DSN given and no PostgreSQL binaries to start a server with (the reason says)."""


def postgres_bindir() -> Path | None:
    """The newest Debian PostgreSQL ``bin`` directory that has ``initdb`` and ``pg_ctl``."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name)
                   if Path(p).parent.parent.name.isdigit() else 0)
    for initdb in reversed(found):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None:
            return None
    which = shutil.which("pg_ctl")
    assert which is not None
    return Path(which).resolve().parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TempPostgres:
    """A private PostgreSQL cluster in a temporary directory; :meth:`stop` removes it."""

    dsn: str
    root: Path
    bindir: Path
    run_as: str | None
    port: int
    #: The server's options (``pg_ctl -o``), to start it again after :meth:`down`.
    options: str = ""

    @classmethod
    def start(cls, *, fast: bool = True, timeout_s: float = 60.0) -> TempPostgres:
        """initdb, start and create the ``laneway`` database.

        ``fast`` turns off fsync (a test server need not survive a power cut).
        """
        bindir = postgres_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries (install Debian's postgresql package, "
                f"as scripts/test does, or set {ENV_DSN}=postgresql://...)")
        run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' user to run PostgreSQL "
                    f"as (PostgreSQL refuses root); set {ENV_DSN}") from None
            run_as = "postgres"
        root = Path(tempfile.mkdtemp(prefix="laneway-pg-"))
        if run_as is not None:
            shutil.chown(root, user=run_as)
        root.chmod(0o700)
        port = _free_port()
        server = cls(dsn=f"postgresql://postgres@127.0.0.1:{port}/{DATABASE}", root=root,
                     bindir=bindir, run_as=run_as, port=port)
        try:
            server._run("initdb", "-D", str(root / "data"), "-U", "postgres", "-A", "trust",
                        "-E", "UTF8", "--locale=C", "--no-sync")
            options = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                       f"-c unix_socket_directories={root} -c max_connections=200")
            if fast:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            server.options = options
            server.up(timeout_s=timeout_s)
            server._run("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres",
                        DATABASE)
        except BaseException:
            server.stop()
            raise
        return server

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, check=False)
        if proc.returncode != 0:
            log = ""
            if (self.root / "log").exists():
                log = (self.root / "log").read_text(errors="replace")[-2000:]
            raise PostgresUnavailable(
                f"{tool} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}"
                + (f"\n{log}" if log else ""))

    def up(self, *, timeout_s: float = 60.0) -> None:
        """Start the server (again, after :meth:`down`)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"),
                  "-o", self.options, "-w", "-t", str(int(timeout_s)), "start")

    def down(self) -> None:
        """Stop the server, cutting every connection (an outage; :meth:`up` ends it)."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its directory. Safe to call twice."""
        if not self.root.exists():
            return
        if (self.root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(PostgresUnavailable):
                self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w",
                          "stop")
        shutil.rmtree(self.root, ignore_errors=True)


_shared: TempPostgres | None = None


def find_postgres() -> str:
    """A DSN for tests: ``$LANEWAY_TEST_PG``, else one shared private server per process.

    The private server is stopped when the process exits (or by :func:`stop_shared`).
    Raises :class:`PostgresUnavailable` (with the reason) when neither is possible.
    """
    global _shared
    dsn = os.environ.get(ENV_DSN)
    if dsn:
        return dsn
    if _shared is None:
        _shared = TempPostgres.start()
        atexit.register(stop_shared)
    return _shared.dsn


def stop_shared() -> None:
    global _shared
    if _shared is not None:
        _shared.stop()
        _shared = None


def schema_dsn(dsn: str, schema: str) -> str:
    """``dsn`` with every connection's ``search_path`` set to ``schema``."""
    sep = "&" if "?" in dsn else "?"
    return f"{dsn}{sep}options=-csearch_path%3D{schema}"


def new_schema(dsn: str) -> tuple[str, str]:
    """Create an empty schema in ``dsn``'s database; returns (its name, a DSN that uses it).

    Each test gets an empty ledger this way without needing CREATE DATABASE rights.
    """
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(dsn), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return name, schema_dsn(dsn, name)


def drop_schema(dsn: str, name: str) -> None:
    import psycopg

    with psycopg.connect(_libpq(dsn), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def wait_ready(dsn: str, *, timeout_s: float = 30.0) -> None:
    """Wait until ``dsn`` accepts connections (a server that is still starting)."""
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg.connect(_libpq(dsn), connect_timeout=2).close()
            return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresUnavailable(f"cannot connect to {dsn}: {exc}") from None
            time.sleep(0.2)


def _libpq(dsn: str) -> str:
    """A libpq URI for psycopg (it does not know SQLAlchemy's ``+psycopg`` suffix)."""
    return dsn.replace("postgresql+psycopg://", "postgresql://", 1)
