"""Request bodies have a limit, enforced as they stream in; ``Host`` must name this
server's address family (issue 18.3)."""

from __future__ import annotations

import json
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from laneway.local import RunningLocal

from .helpers import Served, start_server

MiB = 1024 * 1024


def test_a_huge_chat_message_is_refused_with_413(served: Served) -> None:
    message = json.dumps({"message": "x" * (20 * MiB)}).encode()
    with served.client() as http:
        r = http.post("/v1/chat/stream", content=message,
                      headers={"content-type": "application/json"})
        assert r.status_code == 413, r.text[:200]
        assert r.json()["error"]["type"] == "request_too_large"
        assert f"({8 * MiB})" in r.json()["error"]["message"]  # the one 413, in the API's words
        assert http.get("/healthz").status_code == 200
        ok = http.post("/v1/chat/stream", json={"message": "still " * 1000})
        assert ok.status_code == 200 and '"done":true' in ok.text


def test_a_chunked_body_is_cut_off_while_it_streams(served: Served) -> None:
    """No Content-Length: the server counts as it reads, and holds at most the limit."""
    chunk = b"x" * MiB

    def body() -> Iterator[bytes]:
        yield b'{"message": "'
        for _ in range(64):
            yield chunk
        yield b'"}'

    tracemalloc.start()
    try:
        with served.client() as http:
            r = http.post("/v1/chat/stream", content=body(),
                          headers={"content-type": "application/json"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.status_code == 413, r.text[:200]
    assert peak < 24 * MiB, f"the server held {peak / MiB:.0f} MiB of a 64 MiB body"


def test_an_upload_over_its_limit_is_413(served: Served,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from laneway.server import body_limit

    monkeypatch.setattr(body_limit, "UPLOAD_LIMIT", MiB)  # 256 MiB is slow to send
    line = json.dumps({"id": "a", "prompt": "y" * 1000}) + "\n"
    lines = [line.replace('"a"', f'"a{i}"').encode() for i in range(2000)]
    jobs = b"".join(lines)
    with served.client() as http:
        r = http.post("/v1/runs?name=big", files={"file": ("j.jsonl", jobs)})
        assert r.status_code == 413, r.text[:200]
        small = http.post("/v1/runs?name=small", files={"file": ("j.jsonl", b"".join(lines[:20]))})
        assert small.status_code == 201, small.text[:200]


def test_an_ipv6_host_on_an_ipv4_server_is_refused(served: Served) -> None:
    port = served.base_url.rsplit(":", 1)[1]
    with served.client() as http:
        for host in ("[::1]", f"[::1]:{port}", "[0:0:0:0:0:0:0:1]"):
            r = http.get("/v1/runs", headers={"host": host})
            assert r.status_code == 400, host
            assert "not this server's loopback name" in r.json()["error"]["message"]
        for host in (f"127.0.0.1:{port}", "127.0.0.2", f"localhost:{port}"):
            assert http.get("/v1/runs", headers={"host": host}).status_code == 200, host


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_an_ipv4_host_on_an_ipv6_server_is_refused(local_api: RunningLocal,
                                                    tmp_path: Path) -> None:
    s = start_server(local_api, tmp_path / "l.db", host="::1")
    try:
        with httpx.Client(base_url=s.base_url, timeout=10) as http:
            assert http.get("/v1/runs").status_code == 200
            assert http.get("/v1/runs", headers={"host": "localhost"}).status_code == 200
            assert http.get("/v1/runs", headers={"host": "127.0.0.1"}).status_code == 400
    finally:
        s.stop()
