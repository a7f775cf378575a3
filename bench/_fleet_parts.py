"""The pieces of bench/fleet.py: the fleet's processes, and the clients in front of it.

:class:`Fleet` starts ``laneway serve`` and ``laneway worker`` processes on one ledger in
front of one upstream, kills one with SIGKILL and starts it again (a serve on its port).
:class:`RoundRobin` is the bench's load balancer, as an httpx transport under the guide's
client: each request goes to the next gateway, a refused connection to the one after;
it logs every attempt (when, how long, what came back), so the bench can say what the
clients saw while processes were killed.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2  # the transport under the SDK's client is of the SDK's httpx

from _guide import GuideBatch
from laneway.cost import tokens
from laneway.cost.prices import worst_cost

MODEL = "claude-haiku-4-5"
#: The naive clients: name -> (key budget in worst cases of one request, jobs, concurrency).
CLIENTS = {"alpha": (1e6, 6000, 20), "beta": (1e6, 6000, 20), "gamma": (1e6, 6000, 20),
           "tight": (60, 400, 4)}


def params_of(row: dict[str, Any]) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": row["max_tokens"],
            "messages": [{"role": "user", "content": row["prompt"]}]}


def worst_of(params: dict[str, Any]) -> float:
    """The most one request can cost (what a budget reserves for it)."""
    return worst_cost(MODEL, tokens.input_tokens(params), int(params["max_tokens"]),
                      local=False)


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    pids: list[int] = field(default_factory=list)


class Fleet:
    """``serves`` gateways and ``workers`` workers on ``dsn`` in front of ``upstream``."""

    def __init__(self, dsn: str, upstream: str, ports: list[int], workers: int, *,
                 run_id: str, lease_s: float, logs: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        self.env["ANTHROPIC_BASE_URL"] = upstream
        laneway = [sys.executable, "-m", "laneway"]
        self.procs: dict[str, Proc] = {}
        for i, port in enumerate(ports):
            self.procs[f"serve{i}"] = Proc(f"serve{i}", [
                *laneway, "serve", "--port", str(port), "--provider", "anthropic", "--model",
                MODEL, "--db", dsn], logs / f"serve{i}.log")
        for i in range(workers):
            self.procs[f"worker{i}"] = Proc(f"worker{i}", [
                *laneway, "worker", "--db", dsn, "--run", run_id, "--provider", "anthropic",
                "--lease", str(lease_s), "-q"], logs / f"worker{i}.log")
        self.urls = [f"http://127.0.0.1:{p}" for p in ports]

    def start(self, name: str) -> None:
        p = self.procs[name]
        with p.log.open("ab") as log:
            p.proc = subprocess.Popen(p.argv, env=self.env, stdout=log, stderr=log)
        p.pids.append(p.proc.pid)

    def start_all(self, timeout_s: float = 90.0) -> None:
        for name in self.procs:
            self.start(name)
        self.wait_serves(timeout_s)

    def wait_serves(self, timeout_s: float = 90.0) -> None:
        """Until every gateway answers ``/healthz`` (a restarted one has taken up what its
        predecessor left: its reservations interrupted, its batches resumed)."""
        deadline = time.monotonic() + timeout_s
        for url in self.urls:
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"laneway serve at {url} did not start (see the logs)")
                time.sleep(0.2)

    def ledger_retries(self) -> dict[str, int]:
        """The ledger calls the processes tried again, by reason (their logs' warnings)."""
        reasons: dict[str, int] = {}
        for p in self.procs.values():
            for line in p.log.read_text(errors="replace").splitlines():
                if " is unreachable (" in line:
                    why = line.split(" is unreachable (", 1)[1].split(")", 1)[0]
                    reasons[why] = reasons.get(why, 0) + 1
        return reasons

    def kill(self, name: str) -> int:
        """SIGKILL ``name``; returns its pid (the process may have ended on its own)."""
        p = self.procs[name]
        assert p.proc is not None
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGKILL)
        p.proc.wait()
        return p.proc.pid

    def alive(self, name: str) -> bool:
        p = self.procs[name].proc
        return p is not None and p.poll() is None

    def wait_workers(self, timeout_s: float) -> bool:
        """Until every worker has exited (its run done or stopped); False on time out."""
        deadline = time.monotonic() + timeout_s
        for p in self.procs.values():
            if p.name.startswith("worker") and p.proc is not None:
                try:
                    p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    return False
        return True

    def stop_all(self) -> None:
        for p in self.procs.values():
            if p.proc is not None and p.proc.poll() is None:
                p.proc.terminate()
        for p in self.procs.values():
            if p.proc is not None:
                try:
                    p.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.proc.kill()
                    p.proc.wait()


@dataclass
class Attempt:
    """One HTTP attempt of a client: ``outcome`` is the status, or the error's name."""

    content: str
    start: float
    end: float
    outcome: str
    moved: int


class RoundRobin(httpx2.AsyncBaseTransport):
    """Each request to the next gateway; a refused connection tried on the next one."""

    def __init__(self, urls: list[str]) -> None:
        self.urls = [httpx2.URL(u) for u in urls]
        self.turn = 0
        self.inner = httpx2.AsyncHTTPTransport(limits=httpx2.Limits(
            max_connections=1000, max_keepalive_connections=200))
        self.attempts: list[Attempt] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        content = hashlib.sha1(request.content).hexdigest()[:16]
        start = time.monotonic()
        moved = 0
        while True:
            url = self.urls[self.turn % len(self.urls)]
            self.turn += 1
            request.url = request.url.copy_with(host=url.host, port=url.port)
            request.headers["host"] = url.netloc.decode()
            try:
                response = await self.inner.handle_async_request(request)
            except httpx2.ConnectError:
                moved += 1
                if moved < 3 * len(self.urls):
                    continue
                self.attempts.append(Attempt(content, start, time.monotonic(), "refused",
                                             moved))
                raise
            except httpx2.HTTPError as exc:
                self.attempts.append(Attempt(content, start, time.monotonic(),
                                             type(exc).__name__, moved))
                raise
            self.attempts.append(Attempt(content, start, time.monotonic(),
                                         str(response.status_code), moved))
            return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class FleetGuide(GuideBatch):
    """The guide's code (bench/_guide.py) with a laneway key, through :class:`RoundRobin`."""

    def __init__(self, urls: list[str], key: str) -> None:
        super().__init__("http://fleet")
        self.key = key
        self.transport = RoundRobin(urls)

    def client(self) -> anthropic.AsyncAnthropic:
        http = anthropic.DefaultAsyncHttpxClient(transport=self.transport,
                                                 event_hooks={"response": [self._hook]})
        return anthropic.AsyncAnthropic(base_url=self.base_url, api_key=self.key,
                                        http_client=http)


def client_rows(name: str, n: int, *, words: int = 40, max_tokens: int = 16
                ) -> list[dict[str, Any]]:
    """``n`` jobs of one client, each prompt its own (the upstream counts per prompt)."""
    filler = " ".join(f"w{i}" for i in range(words))
    return [{"id": f"{name}-{i}", "prompt": f"{name} request {i}: {filler}",
             "max_tokens": max_tokens} for i in range(n)]
