"""A throwaway PgBouncer in transaction pooling mode in front of a test PostgreSQL.

Debian's ``pgbouncer`` package (scripts/test installs it). PgBouncer refuses to run as
root, so as root it is started as ``postgres``, as :mod:`pgserver` starts PostgreSQL.

>>> bouncer = PgBouncer.start("postgresql://postgres@127.0.0.1:5432/laneway")
>>> bouncer.dsn("laneway")   # 'postgresql://postgres@127.0.0.1:PORT/laneway'
>>> bouncer.stop()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from pgserver import PostgresUnavailable, _free_port


def pgbouncer_binary() -> str | None:
    return shutil.which("pgbouncer") or (
        "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)


@dataclass
class PgBouncer:
    root: Path
    port: int
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, server_dsn: str, *, pool_size: int = 3) -> PgBouncer:
        """A PgBouncer on a free loopback port, ``pool_mode = transaction``, passing any
        database name on to ``server_dsn``'s server with at most ``pool_size`` server
        connections per database (fewer than clients: connections are really shared)."""
        binary = pgbouncer_binary()
        if binary is None:
            raise PostgresUnavailable("no pgbouncer binary (install Debian's pgbouncer "
                                      "package, as scripts/test does)")
        target = urlsplit(server_dsn)
        root = Path(tempfile.mkdtemp(prefix="laneway-bouncer-"))
        port = _free_port()
        run_as = "postgres" if os.geteuid() == 0 else None
        (root / "users.txt").write_text('"postgres" ""\n')
        (root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={target.hostname} port={target.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {root / 'users.txt'}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\nmin_pool_size = 0\nreserve_pool_size = 0\n"
            "max_client_conn = 200\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {root / 'log'}\npidfile = {root / 'pid'}\n")
        if run_as is not None:
            shutil.chown(root, user=run_as)
            for f in root.iterdir():
                shutil.chown(f, user=run_as)
        cmd = [binary, str(root / "pgbouncer.ini")]
        if run_as is not None:
            cmd = ["runuser", "-u", run_as, "--", *cmd]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        bouncer = cls(root=root, port=port, proc=proc)
        bouncer._wait_listening()
        return bouncer

    def _wait_listening(self, timeout_s: float = 15.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                self.stop()
                raise PostgresUnavailable(f"pgbouncer exited: {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise PostgresUnavailable("pgbouncer did not listen within 15 s")

    def dsn(self, database: str) -> str:
        """A DSN through the pooler, naming it for laneway (``?pooler=pgbouncer``)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}?pooler=pgbouncer"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)
