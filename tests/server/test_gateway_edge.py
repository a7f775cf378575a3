"""The gateway off loopback, and hostile requests (issue 24, goals 4 and 5): every
route needs a key or the token, through the machine's own address and any ``Host``;
oversized and slow heads and bodies, deep JSON and the wrong content type get a 4xx in
the API's shape (request id in header and body), fast, and other clients do not notice.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import anthropic
import httpx
import pytest

from laneway.local import RunningLocal
from laneway.server.connections import GuardedHttpTools
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.intake import IntakeLimits, access_refusal

from .helpers import Served, start_server

MODEL = "claude-haiku-4-5"
HI = [{"role": "user", "content": "Say hello."}]
TOKEN = "s3cret-token"
MESSAGE = {"model": MODEL, "max_tokens": 5, "messages": HI}


def own_address() -> str | None:
    """An address of this machine that is not loopback, or None."""
    candidates = []
    with contextlib.suppress(OSError):
        candidates.append(socket.gethostbyname(socket.gethostname()))
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))  # no packet is sent: picks the interface
        candidates.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    return next((a for a in candidates if not a.startswith("127.") and a != "0.0.0.0"), None)


class QuickHeads(GuardedHttpTools):
    head_timeout_s: ClassVar[float] = 1.0


@pytest.fixture
def outside(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """``laneway serve --host 0.0.0.0 --token``, reached through this machine's address."""
    address = own_address()
    if address is None:
        pytest.skip("this machine has no address but loopback to reach the server through")
    served = start_server(local_api, tmp_path / "l.db", token=TOKEN, host="0.0.0.0",
                          http=QuickHeads, gateway=GatewaySettings(
                              intake=IntakeLimits(idle_s=0.5, total_s=2.0)))
    served.base_url = served.base_url.replace("0.0.0.0", address)
    try:
        yield served
    finally:
        served.stop()


def assert_api_error(r: httpx.Response, status: int, error_type: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:300])
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type, body
    assert r.headers["request-id"] == body["request_id"], (dict(r.headers), body)


def gateway_calls(batch: str) -> list[tuple[str, str, object]]:
    return [("POST", "/v1/messages", MESSAGE),
            ("POST", "/v1/messages/count_tokens", {"model": MODEL, "messages": HI}),
            ("GET", "/v1/models", None), ("GET", f"/v1/models/{MODEL}", None),
            ("POST", "/v1/messages/batches", {"requests": []}),
            ("GET", "/v1/messages/batches", None), ("GET", f"/v1/messages/batches/{batch}", None),
            ("GET", f"/v1/messages/batches/{batch}/results", None),
            ("POST", f"/v1/messages/batches/{batch}/cancel", None),
            ("DELETE", f"/v1/messages/batches/{batch}", None)]


def test_off_loopback_every_route_needs_a_known_key_or_the_token(outside: Served) -> None:
    store = outside.agent.store
    _, good = store.create_key("app")
    _, gone = store.create_key("gone")
    store.revoke_key("gone")
    refused = {"none": {}, "wrong": {"x-api-key": "anything"},
               "unknown": {"x-api-key": "lw_" + "x" * 43}, "revoked": {"x-api-key": gone},
               "forged host": {"host": "127.0.0.1"}}
    with httpx.Client(base_url=outside.base_url, timeout=10) as http:
        for who, headers in refused.items():
            for method, path, body in gateway_calls("msgbatch_x"):
                r = http.request(method, path, json=body, headers=headers)
                assert_api_error(r, 401, "authentication_error")
                assert who and path  # (in the message on failure)
        # A large body refused before it is read: the answer still reaches the client
        # (the connection closes lingering, not reset under the client's feet).
        big = {**MESSAGE, "messages": [{"role": "user", "content": "x" * 4_000_000}]}
        for _ in range(3):
            r = http.post("/v1/messages", json=big, headers={"x-api-key": "anything"})
            assert_api_error(r, 401, "authentication_error")
        assert outside.local.api.completions.completed == 0
        # /healthz: no token, nothing said of the upstream.
        health = http.get("/healthz")
        assert health.status_code == 200 and health.json() == {"ok": True}
        # Any Host name, the machine's address: a key (or the token) is what counts.
        for host in ("gateway.example.com", None):
            headers = {"x-api-key": good, **({"host": host} if host else {})}
            r = http.post("/v1/messages", json=MESSAGE, headers=headers)
            assert r.status_code == 200, r.text[:300]
            assert http.get("/v1/models", headers=headers).status_code == 200
        # The rest of the server wants the token itself: a key or a Host do not do.
        r = http.get("/v1/runs", headers={"host": "127.0.0.1", "x-api-key": good})
        assert_api_error(r, 401, "authentication_error")
        assert http.get("/v1/runs", headers={"authorization": f"Bearer {TOKEN}"}
                        ).status_code == 200
    sdk = anthropic.Anthropic(base_url=outside.base_url, api_key=good, max_retries=0)
    assert sdk.messages.count_tokens(model=MODEL, messages=HI).input_tokens > 0
    assert sdk.models.retrieve(MODEL).id == MODEL
    by_token = anthropic.Anthropic(base_url=outside.base_url, api_key=TOKEN, max_retries=0)
    assert by_token.messages.create(**MESSAGE).content  # type: ignore[call-overload]


def test_without_a_token_only_loopback_peers_and_names() -> None:
    scope = {"type": "http", "client": ("10.1.2.3", 5000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000")]}
    refusal = access_refusal(scope, token=None)  # type: ignore[arg-type]
    assert refusal is not None and refusal.status == 403
    assert access_refusal(scope, token="t") is None  # type: ignore[arg-type]
    scope["client"] = ("127.0.0.1", 5000)
    assert access_refusal(scope, token=None) is None  # type: ignore[arg-type]
    scope["headers"] = [(b"host", b"evil.example")]
    refusal = access_refusal(scope, token=None)  # type: ignore[arg-type]
    assert refusal is not None and refusal.status == 400


def raw_answer(address: tuple[str, int], payload: bytes, *,
               wait_s: float = 8.0) -> tuple[bytes, float]:
    """Send ``payload`` on a new connection and read until the server closes it (or
    ``wait_s``): what came back, and after how long."""
    started = time.monotonic()
    with socket.create_connection(address, timeout=wait_s) as conn:
        # The server may answer and close while this is still sending.
        with contextlib.suppress(OSError):
            conn.sendall(payload)
        got = b""
        try:
            while chunk := conn.recv(65536):
                got += chunk
        except OSError:
            pass
    return got, time.monotonic() - started


def address_of(served: Served) -> tuple[str, int]:
    host, port = served.base_url.removeprefix("http://").rsplit(":", 1)
    return host.strip("[]"), int(port)


def parsed(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {n.lower(): v for n, v in (line.split(": ", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


def test_huge_header_sets_are_refused_fast_and_others_do_not_notice(outside: Served) -> None:
    address = address_of(outside)
    _, key = outside.agent.store.create_key("app")
    stop = threading.Event()
    others: list[float] = []
    failures: list[str] = []

    def other_client() -> None:
        with httpx.Client(base_url=outside.base_url, timeout=10,
                          headers={"x-api-key": key}) as http:
            while not stop.is_set():
                t0 = time.monotonic()
                r = http.get("/v1/models")
                others.append(time.monotonic() - t0)
                if r.status_code != 200:
                    failures.append(r.text[:200])

    flood = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(30_000))
    heads = [flood, b"".join(b"X-H%d: v\r\n" % i for i in range(101)),
             b"X-Big: " + b"v" * 70_000 + b"\r\n"]
    thread = threading.Thread(target=other_client)
    thread.start()
    try:
        ends = time.monotonic() + 1.5  # flood for a while as the other client goes on
        while heads or time.monotonic() < ends:
            head = heads.pop() if heads else flood
            raw, took = raw_answer(address, b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n"
                                   + head + b"\r\n")
            status, headers, body = parsed(raw)
            assert status == 431 and took < 5.0, (status, took)  # ~10 ms on a quiet machine
            assert headers["request-id"] == body["request_id"]
    finally:
        stop.set()
        thread.join()
    # The whole gateway stalled ~20 s per such request before; ~10 ms on a quiet machine
    # (the bound is for a machine at load 15 on 2 cores: bench/gateway_flood.py measures).
    assert not failures and len(others) >= 3 and max(others) < 5.0, (failures, others)


def test_slow_heads_and_bodies_are_cut_in_bounded_time(outside: Served) -> None:
    address = address_of(outside)
    _, key = outside.agent.store.create_key("app")
    # Half a head: 408 after the head timeout (1 s here), the connection closed.
    raw, took = raw_answer(address, b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    status, headers, body = parsed(raw)
    assert status == 408 and took < 5.0, (status, took)
    assert headers["request-id"] == body["request_id"]
    # Half a body with a key: 408 after the body's pause limit (0.5 s here).
    start = (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
             b"x-api-key: " + key.encode() + b"\r\ncontent-length: 1000\r\n\r\n{\"model\":")
    raw, took = raw_answer(address, start)
    status, headers, body = parsed(raw)
    assert status == 408 and took < 5.0, (status, took)
    assert headers["request-id"] == body["request_id"]
    # Without a key: 401 before the body is read.
    raw, took = raw_answer(address, start.replace(key.encode(), b"nothing"))
    status, headers, body = parsed(raw)
    assert status == 401 and took < 3.0, (status, took)
    assert outside.local.api.completions.completed == 0


def test_deep_json_and_other_content_types_are_4xx_never_500(outside: Served) -> None:
    _, key = outside.agent.store.create_key("app")
    deep = b'{"model": "m", "max_tokens": 5, "messages": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    wide = b'{"model": "m", "messages": [' + b",".join([b"0"] * 2_000_001) + b"]}"
    with httpx.Client(base_url=outside.base_url, timeout=10,
                      headers={"x-api-key": key}) as http:
        for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/messages/batches"):
            r = http.post(path, content=deep, headers={"content-type": "application/json"})
            assert_api_error(r, 400, "invalid_request_error")
            assert "nested deeper than 128 levels" in r.json()["error"]["message"]
            r = http.post(path, files={"file": ("m.json", json.dumps(MESSAGE).encode())})
            assert_api_error(r, 415, "invalid_request_error")
            r = http.post(path, content=b"{", headers={"content-type": "application/json"})
            assert_api_error(r, 400, "invalid_request_error")
        r = http.post("/v1/messages", content=wide, headers={"content-type": "application/json"})
        assert_api_error(r, 400, "invalid_request_error")
        assert http.post("/v1/messages", json=MESSAGE).status_code == 200
    assert outside.local.api.completions.completed == 1
