"""Helpers for the server tests: ``laneway serve`` on a loopback port (uvicorn in a
thread) backed by the local API, an SSE parser, and an engine wrapper that counts."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import uvicorn
from fastapi import FastAPI

from laneway.agent import HybridAgent
from laneway.local import RunningLocal
from laneway.local.faults import Fault, FaultPlan
from laneway.local.server import listening_port
from laneway.provider.client import Provider, sdk_client
from laneway.server import ServerSettings, create_app
from laneway.server.connections import HTTP_PROTOCOL


@dataclass
class Served:
    base_url: str
    app: FastAPI
    server: uvicorn.Server
    thread: threading.Thread
    local: RunningLocal
    token: str | None = None

    @property
    def agent(self) -> HybridAgent:
        agent: HybridAgent = self.app.state.agent
        return agent

    def client(self, *, token: bool = True) -> httpx.Client:
        headers = {"authorization": f"Bearer {self.token}"} if token and self.token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=10)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(local: RunningLocal, db: Path, *, token: str | None = None,
                 host: str = "127.0.0.1", kind: str = "local",
                 production_client: bool = False, http: type[asyncio.Protocol] | str = HTTP_PROTOCOL,
                 **settings: Any) -> Served:
    """Run the app in a thread whose event loop owns the provider's client;
    ``production_client``: the SDK client as ``laneway serve`` makes it (its aiohttp
    transport), not the SDK's default; ``http``: uvicorn's protocol (``laneway serve``'s
    own by default)."""
    port = 0  # the OS picks a free one as uvicorn binds it: no race for a free port
    client = sdk_client(api_key="k", base_url=local.base_url) if production_client else \
        anthropic.AsyncAnthropic(base_url=local.base_url, api_key="k", max_retries=0)
    # kind="anthropic": priced like the real API (the local API answers as Claude would).
    provider = Provider(client, kind, local.base_url, description="the test local API")
    settings = {"events_interval_s": 0.1, "progress_interval_s": 0.2, **settings}
    app = create_app(ServerSettings(host=host, port=port, token=token, db=db, **settings),
                     provider=provider)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                           log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=2, http=http))

    async def main() -> None:
        try:
            await server.serve()
        finally:
            await provider.aclose()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True,
                              name="laneway-serve-test")
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    port = listening_port(server)
    shown = f"[{host}]" if ":" in host else host
    return Served(f"http://{shown}:{port}", app, server, thread, local, token)


def parse_sse(lines: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """(event name, JSON data) of each event; comments (pings) are skipped."""
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = "message", []
    for line in lines:
        if line == "":
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith(":"):
            continue
        elif line.startswith("event:"):
            name = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data.append(line.partition(":")[2].removeprefix(" "))
    if data:
        events.append((name, json.loads("\n".join(data))))
    return events


class CountingEngine:
    """Wraps the local API's engine: how much it generated, and whether a request was cut
    short (the client went away) or finished."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.tokens = 0
        self.active = 0
        self.finished = 0
        self.cut = 0

    def count_tokens(self, prompt: Any) -> int:
        return int(self.inner.count_tokens(prompt))

    async def generate(self, prompt: Any, params: Any) -> AsyncIterator[str]:
        complete = False
        self.active += 1
        try:
            async for token in self.inner.generate(prompt, params):
                self.tokens += 1
                yield token
            complete = True
        finally:
            self.active -= 1
            if complete:
                self.finished += 1
            else:
                self.cut += 1

    async def aclose(self) -> None:
        await self.inner.aclose()


class FaultOnce(FaultPlan):
    """A fault plan that draws ``fault`` once, then nothing."""

    def __init__(self, fault: Fault) -> None:
        super().__init__({})
        self.fault: Fault | None = fault

    def draw(self, forced: str | None = None) -> Fault | None:
        fault, self.fault = self.fault, None
        return fault


def wait_for(predicate: Any, *, timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
