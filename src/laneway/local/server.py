"""Run the local API: in a background thread on a free loopback port, or in the foreground.

>>> with serve_local(LocalConfig(engine="echo")) as base_url:
...     client = AsyncAnthropic(base_url=base_url, api_key="local")
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from laneway.errors import ConfigError
from laneway.local.app import LocalAPI, create_app
from laneway.local.config import LocalConfig
from laneway.local.engines import Engine


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def listening_port(server: uvicorn.Server) -> int:
    """The port a started uvicorn server listens on (the one the OS gave for port 0)."""
    return int(server.servers[0].sockets[0].getsockname()[1])


@dataclass
class RunningLocal:
    """A local API running in a thread: its URL, and its state for tests to inspect."""

    base_url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def api(self) -> LocalAPI:
        api: LocalAPI = self.app.state.local
        return api

    def stop(self, *, wait: bool = True) -> None:
        """Ask the server to shut down; with ``wait``, until it has (up to 10 s).

        The port stops accepting connections within about 0.1 s either way; not waiting
        saves the rest of uvicorn's graceful shutdown (about 0.2 s), which adds up over a
        test suite that starts a server per test.
        """
        self.server.should_exit = True
        if wait:
            self.thread.join(timeout=10)


def start_local(config: LocalConfig | None = None, *, host: str = "127.0.0.1",
                port: int = 0, startup_timeout_s: float = 30.0,
                engine: Engine | None = None) -> RunningLocal:
    """Start the local API in a daemon thread and wait until it accepts connections.

    ``engine`` replaces the one ``config`` names (tests use it to plug in a broken one).
    """
    app = create_app(config or LocalConfig(), engine=engine)
    # Port 0: the OS picks a free port as uvicorn binds it, read back once it listens (a
    # port chosen first and bound later could be taken meanwhile by another process).
    server = uvicorn.Server(uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on",
        timeout_keep_alive=30, access_log=False,
    ))
    # uvicorn installs signal handlers only in the main thread; this one is not.
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True,
                              name="laneway-local-api")
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive():
            raise ConfigError(f"the local API could not start on {host}:{port}")
        if time.monotonic() > deadline:
            raise ConfigError(f"the local API did not start within {startup_timeout_s:g} s")
        time.sleep(0.01)
    port = listening_port(server)
    return RunningLocal(f"http://{host}:{port}", app, server, thread)


@contextlib.contextmanager
def serve_local(config: LocalConfig | None = None, *, host: str = "127.0.0.1",
                port: int = 0) -> Iterator[str]:
    """Run the local API for the duration of a ``with`` block; yields its base URL."""
    running = start_local(config, host=host, port=port)
    try:
        yield running.base_url
    finally:
        running.stop()
