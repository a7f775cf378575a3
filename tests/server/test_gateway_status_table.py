"""The gateway's relay follows the one status table (:mod:`laneway.wire.status`) against
a real upstream that answers what the local API never does: a 409 with the API's error
body (retried, as the SDK and the provider retry it; the relay did not), and a proxy's
502 with an HTML body (the API not reached: waited out as an outage)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anthropic
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from laneway.local.server import listening_port
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits

from .helpers import Served, start_server

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
           "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
           "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}
CONFLICT = {"type": "error", "error": {"type": "api_error", "message": "conflict"},
            "request_id": "req_x"}


class Scripted:
    """An upstream that answers each ``POST /v1/messages`` with the next of ``script``
    (then the Message)."""

    def __init__(self) -> None:
        self.script: list[Response] = []
        self.seen: list[float] = []

    async def messages(self, request: Request) -> Response:
        await request.body()
        self.seen.append(time.monotonic())
        if self.script:
            return self.script.pop(0)
        return Response(json.dumps(MESSAGE), media_type="application/json",
                        headers={"request-id": "req_ok"})


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Scripted, str]]:
    scripted = Scripted()
    app = Starlette(routes=[Route("/v1/messages", scripted.messages, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    try:
        yield scripted, f"http://127.0.0.1:{listening_port(server)}"
    finally:
        server.should_exit = True
        thread.join(5)


@pytest.fixture(scope="module")
def served(upstream: tuple[Scripted, str],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    local: Any = SimpleNamespace(base_url=upstream[1])
    s = start_server(local, tmp_path_factory.mktemp("table") / "l.db",
                     gateway=GatewaySettings(waits=WaitLimits(10.0, 10.0)))
    try:
        yield s
    finally:
        s.stop()


def _create(served: Served) -> anthropic.types.Message:
    client = anthropic.Anthropic(base_url=served.base_url, api_key="k", max_retries=0)
    return client.messages.create(model="claude-haiku-4-5", max_tokens=5,
                                  messages=[{"role": "user", "content": "hi"}])


def test_a_409_is_tried_again(served: Served, upstream: tuple[Scripted, str]) -> None:
    scripted, _ = upstream
    scripted.seen.clear()
    scripted.script = [Response(json.dumps(CONFLICT), status_code=409,
                                media_type="application/json")]
    assert _create(served).content[0].text == "hi"  # type: ignore[union-attr]
    assert len(scripted.seen) == 2


def test_a_proxys_502_is_waited_out(served: Served, upstream: tuple[Scripted, str]) -> None:
    scripted, _ = upstream
    scripted.seen.clear()
    html = Response("<html><body>502 Bad Gateway</body></html>", status_code=502,
                    media_type="text/html")
    scripted.script = [html, html]
    assert _create(served).content[0].text == "hi"  # type: ignore[union-attr]
    assert len(scripted.seen) == 3
