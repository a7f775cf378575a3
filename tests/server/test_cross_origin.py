"""A page on another origin cannot start or cancel runs (issue 18.2).

Browsers send a ``POST`` with a ``text/plain`` or ``multipart/form-data`` body, or with
none, to any server without a CORS preflight; the server must refuse those that come
from elsewhere. Decision for requests with no ``Origin``, ``Referer`` or ``Sec-Fetch-*``
header: a program (curl, the SDK, a script) sent them, since every browser in use sends
``Origin`` on a cross-origin ``POST``; they are answered, unless their user agent is a
browser's (``Mozilla/...``) and their body is one a browser sends without a preflight.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laneway.local import RunningLocal
from laneway.local.server import free_port

from .helpers import Served, start_server, wait_for

CHROMIUM = shutil.which("chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
JOBS = '{"id": "a", "prompt": "spend my budget"}\n'
MULTIPART_CURL = {"file": ("jobs.jsonl", JOBS.encode(), "application/octet-stream")}


@pytest.fixture
def slow(local_api: RunningLocal, tmp_path: Path) -> Iterator[Served]:
    """A server with a run 'victim' that takes a while (one request at a time)."""
    s = start_server(local_api, tmp_path / "ledger.db", concurrency=1)
    try:
        jobs = "".join(json.dumps({"id": f"v{i}", "prompt": "a b c d e f"}) + "\n"
                       for i in range(60))
        with s.client() as http:
            r = http.post("/v1/runs?name=victim", content=jobs,
                          headers={"content-type": "application/x-ndjson"})
            assert r.status_code == 201, r.text
        yield s
    finally:
        s.stop()


def _runs(served: Served) -> dict[str, dict[str, Any]]:
    with served.client() as http:
        return {r["id"]: r for r in http.get("/v1/runs").json()["data"]}


@pytest.mark.parametrize(("headers", "why"), [
    ({"origin": "http://evil.example"}, "Origin 'http://evil.example'"),
    ({"origin": "null"}, "Origin 'null'"),
    ({"origin": "http://127.0.0.1:1"}, "Origin 'http://127.0.0.1:1'"),  # another port
    ({"sec-fetch-site": "cross-site"}, "Sec-Fetch-Site: cross-site"),
    ({"sec-fetch-site": "same-site"}, "Sec-Fetch-Site: same-site"),
    ({"referer": "http://evil.example/page"}, "Referer"),
    ({"user-agent": "Mozilla/5.0 (X11; Linux x86_64)"}, "does not say where"),
])
@pytest.mark.local_config(token_ms=100)
def test_cross_site_posts_are_refused(slow: Served, headers: dict[str, str],
                                      why: str) -> None:
    with slow.client() as http:
        for r in (http.post("/v1/runs?name=evil", content=JOBS,
                            headers={**headers, "content-type": "text/plain"}),
                  http.post("/v1/runs?name=evil2", files=MULTIPART_CURL, headers=headers),
                  http.post("/v1/runs/victim/cancel", headers=headers)):
            assert r.status_code == 403, r.text
            assert r.json()["error"]["type"] == "permission_error"
            assert why in r.json()["error"]["message"]
    runs = _runs(slow)
    assert list(runs) == ["victim"] and runs["victim"]["canceled"] == 0


@pytest.mark.local_config(token_ms=100)
def test_programs_and_the_servers_own_origin_are_answered(slow: Served) -> None:
    own = {"origin": slow.base_url, "sec-fetch-site": "same-origin"}
    with slow.client() as http:
        # curl -F and curl --data-binary send no Origin: a program, answered.
        assert http.post("/v1/runs?name=curl-f", files=MULTIPART_CURL).status_code == 201
        assert http.post("/v1/runs?name=own", content=JOBS,
                         headers={**own, "content-type": "text/plain"}).status_code == 201
        assert http.post("/v1/runs?name=own-origin", content=JOBS, headers={
            "origin": slow.base_url, "content-type": "text/plain"}).status_code == 201
        assert http.post("/v1/runs/victim/cancel", headers=own).status_code == 200
        # Reading is never refused (no CORS headers: another origin cannot read it).
        assert http.get("/v1/runs", headers={"origin": "http://evil.example"}).status_code \
            == 200
    assert _runs(slow)["victim"]["status"] == "canceled"


@pytest.mark.local_config(token_ms=5)
def test_a_token_opens_it_from_anywhere(local_api: RunningLocal, tmp_path: Path) -> None:
    s = start_server(local_api, tmp_path / "l.db", token="tok")
    try:
        with s.client() as http:
            r = http.post("/v1/runs?name=t", content=JOBS, headers={
                "origin": "http://elsewhere.example", "content-type": "text/plain"})
            assert r.status_code == 201, r.text
    finally:
        s.stop()


class _Blank(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>elsewhere</title><p>another site"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[str]:
    """Another origin: a tiny web server on another loopback port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Blank)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


ATTACK = """async (target) => {
    const jobs = '{"id": "a", "prompt": "spend my budget"}\\n';
    const form = () => { const f = new FormData();
                         f.append("file", new Blob([jobs]), "jobs.jsonl"); return f; };
    const tries = {
        text: [target + "/v1/runs?name=evil-text",
               {method: "POST", body: jobs, headers: {"content-type": "text/plain"}}],
        text_no_cors: [target + "/v1/runs?name=evil-text2",
                       {method: "POST", body: jobs, mode: "no-cors"}],
        form: [target + "/v1/runs?name=evil-form", {method: "POST", body: form()}],
        form_no_cors: [target + "/v1/runs?name=evil-form2",
                       {method: "POST", body: form(), mode: "no-cors"}],
        cancel: [target + "/v1/runs/victim/cancel", {method: "POST", mode: "no-cors"}],
    };
    const out = {};
    for (const [name, [url, init]] of Object.entries(tries)) {
        try { const r = await fetch(url, init); out[name] = r.type + " " + r.status; }
        catch (e) { out[name] = "failed: " + e.message; }
    }
    return out;
}"""


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
@pytest.mark.local_config(token_ms=100)
def test_a_page_on_another_origin_cannot_start_or_cancel_runs(slow: Served,
                                                               elsewhere: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page()
            page.goto(elsewhere + "/")
            outcome = page.evaluate(ATTACK, slow.base_url)
            # Every request was sent (no preflight could stop them); the answers are
            # opaque or unreadable to the page, which is all CORS itself guarantees.
            assert set(outcome) == {"text", "text_no_cors", "form", "form_no_cors",
                                    "cancel"}, outcome
            runs = _runs(slow)
            assert list(runs) == ["victim"], runs  # nothing was started
            assert runs["victim"]["status"] == "running" and runs["victim"]["canceled"] == 0
            # The server's own pages still start and cancel runs (same origin).
            own = browser.new_page()
            own.goto(slow.base_url + "/runs")
            started = own.evaluate("""async (jobs) => {
                const f = new FormData(); f.append("file", new Blob([jobs]), "j.jsonl");
                const r = await fetch("/v1/runs?name=mine", {method: "POST", body: f});
                const c = await fetch("/v1/runs/victim/cancel", {method: "POST"});
                return [r.status, c.status];
            }""", JOBS)
            assert started == [201, 200]
            wait_for(lambda: _runs(slow)["victim"]["status"] == "canceled",
                     what="the cancel from the server's own page")
        finally:
            browser.close()
