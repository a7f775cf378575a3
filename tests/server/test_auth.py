"""Loopback by default; a token off loopback, checked on every route."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from laneway.errors import ConfigError
from laneway.local import RunningLocal
from laneway.server import check_bind
from laneway.server.gateway.loop import is_loopback

from .helpers import Served, start_server

TOKEN = "s3cret-token"
ROUTES = [("GET", "/"), ("GET", "/runs"), ("GET", "/static/chat.js"), ("GET", "/v1/runs"),
          ("GET", "/v1/runs/x"), ("GET", "/v1/runs/x/events"), ("GET", "/v1/runs/x/results"),
          ("POST", "/v1/runs/x/cancel"), ("POST", "/v1/runs"), ("POST", "/v1/chat/stream"),
          ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/nowhere"),
          ("GET", "/traffic"), ("GET", "/static/traffic.js"), ("GET", "/v1/laneway/traffic"),
          ("GET", "/metrics"), ("GET", "/runs/x"), ("GET", "/v1/runs/x/timeline"),
          ("GET", "/v1/runs/x/jobs"), ("GET", "/v1/runs/x/jobs/a"), ("POST", "/v1/runs/x/resend"),
          ("GET", "/v1/laneway/traffic/history")]


@pytest.fixture
def guarded(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    s = start_server(local_api, tmp_path / "ledger.db", token=TOKEN)
    try:
        yield s
    finally:
        s.stop()


def test_loopback_names() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "localhost", "::1", "[::1]", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.com", ""):
        assert not is_loopback(host), host


def test_bind_needs_a_token_off_loopback() -> None:
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(ConfigError, match="--token"):
        check_bind("0.0.0.0", None)
    with pytest.raises(ConfigError, match="empty"):
        check_bind("0.0.0.0", " ")


def test_every_route_needs_the_token(guarded: Served) -> None:
    with guarded.client(token=False) as http:
        for method, path in ROUTES:
            r = http.request(method, path)
            assert r.status_code == 401, (method, path)
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.headers["www-authenticate"].startswith("Bearer")
            r = http.request(method, path, headers={"authorization": "Bearer wrong"})
            assert r.status_code == 401, (method, path)
            r = http.request(method, path, params={"token": "wrong"})
            assert r.status_code == 401, (method, path)


def test_the_token_opens_every_route(guarded: Served) -> None:
    with guarded.client() as http:  # Authorization: Bearer
        assert http.get("/v1/runs").status_code == 200
        assert http.get("/openapi.json").status_code == 200
        assert http.get("/v1/runs/x").status_code == 404  # past the check: no such run
        r = http.post("/v1/chat/stream", json={"message": "hi"})
        assert r.status_code == 200 and '"done":true' in r.text
    with guarded.client(token=False) as http:  # ?token= (pages, scripts, EventSource)
        page = http.get("/", params={"token": TOKEN})
        assert page.status_code == 200
        # The page passes the token on to the scripts and styles it loads.
        assert f'src="/static/chat.js?token={TOKEN}"' in page.text
        assert http.get("/static/chat.js", params={"token": TOKEN}).status_code == 200
        assert http.get("/runs", params={"token": TOKEN}).status_code == 200


def test_without_a_token_only_loopback_hosts_are_answered(served: Served) -> None:
    with served.client() as http:
        assert http.get("/v1/runs").status_code == 200
        assert http.get("/v1/runs", headers={"host": "localhost:1234"}).status_code == 200
        r = http.get("/v1/runs", headers={"host": "attacker.example:8000"})
        assert r.status_code == 400  # DNS rebinding: a page elsewhere cannot read the API
        page = http.get("/")
        assert "content-security-policy" in page.headers
        assert "script-src 'self'" in page.headers["content-security-policy"]


def test_serve_off_loopback_without_token_exits_with_one_line(tmp_path: Path) -> None:
    laneway = Path(sys.executable).with_name("laneway")
    env = {**os.environ, "LANEWAY_LOCAL_ENGINE": "echo", "COLUMNS": "60"}
    env.pop("LANEWAY_SERVE_TOKEN", None)
    proc = subprocess.run([str(laneway), "serve", "--host", "0.0.0.0", "--port", "1"],
                          capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("laneway: error: --host 0.0.0.0"), \
        proc.stderr
    assert "--token" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_page_urls_escape_the_token(local_api: RunningLocal, tmp_path: Path) -> None:
    odd = 'a"b<c>&d'
    s = start_server(local_api, tmp_path / "l.db", token=odd)
    try:
        page = httpx.get(f"{s.base_url}/", params={"token": odd})
        assert page.status_code == 200
        assert odd not in page.text and "?token=a%22b%3Cc%3E%26d" in page.text
    finally:
        s.stop()
