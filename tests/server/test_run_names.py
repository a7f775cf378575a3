"""Run names: one request with a CR LF in ``?name=`` froze ``laneway serve`` (issue 18.1).

The results route put the name in a ``Content-Disposition`` header; the server refused
to send it, and the log filter that then saw the error walked its exception chain, which
looped, forever. Names are now checked (1-64 of ``A-Z a-z 0-9 _ . -``) at the API and the
CLI, the header never echoes a raw name, and the filter stops at a loop.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

import inprocess
from laneway.local.app import _QuietDrops

from .helpers import Served

NDJSON = {"content-type": "application/x-ndjson"}
JOBS = b'{"id": "a", "prompt": "one"}\n{"id": "b", "prompt": "two"}\n'
LANEWAY = [sys.executable, "-m", "laneway"]


def test_the_request_of_the_issue_is_refused_and_the_server_keeps_answering(
        served: Served) -> None:
    with httpx.Client(base_url=served.base_url, timeout=5) as http:
        created = http.post("/v1/runs?name=x%0D%0Ay", content=JOBS, headers=NDJSON)
        try:
            results = http.get("/v1/runs/x%0D%0Ay/results").status_code
        except httpx.TimeoutException:
            results = -1  # the server froze
        try:
            health = http.get("/healthz").status_code
        except httpx.TimeoutException:
            health = -1
        assert (created.status_code, results, health) == (422, 404, 200), created.text
        message = created.json()["error"]["message"]
        assert message.startswith("name: run name 'x\\r\\ny' contains '\\r'")
        assert "A-Z a-z 0-9 _ . -" in message
        assert http.get("/v1/runs").json()["data"] == []  # nothing was started


@pytest.mark.parametrize("name", ['a"b', "a b", "a/b", "", "é", "x" * 65, "a;b"])
def test_names_outside_the_rule_get_422(served: Served, name: str) -> None:
    with served.client() as http:
        r = http.post("/v1/runs", params={"name": name}, content=JOBS, headers=NDJSON)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
        ok = http.post("/v1/runs", params={"name": "A-z_0.9"}, content=JOBS, headers=NDJSON)
        assert ok.status_code == 201, ok.text


def test_an_old_run_with_any_name_gets_a_safe_header(served: Served) -> None:
    odd = 'old"run\r\nx-evil: 1'  # made before names were checked
    served.agent.store.create_run(run_id=odd, fingerprint="f", options={}, mode="realtime",
                                  provider="local", input_path=None, input_sha256=None)
    with httpx.Client(base_url=served.base_url, timeout=5) as http:
        r = http.get(f"/v1/runs/{quote(odd, safe='')}/results")
        assert r.status_code == 200
        assert r.headers["content-disposition"] == \
            'inline; filename="old_run__x-evil__1.results.jsonl"'
        assert "x-evil" not in r.headers
        assert http.get("/healthz").status_code == 200


def test_the_log_filter_ends_on_a_cyclic_exception_chain() -> None:
    a, b = ValueError("a"), RuntimeError("b")
    a.__context__, b.__context__ = b, a
    record = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1, "boom", None,
                               (ValueError, a, None))
    answer: list[bool] = []
    worker = threading.Thread(target=lambda: answer.append(_QuietDrops().filter(record)),
                              daemon=True)
    worker.start()
    worker.join(timeout=5)
    assert answer == [True], "the filter looped on a cyclic chain"


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["COLUMNS"] = "60"
    return inprocess.laneway(args, env=env, cwd=cwd)


@pytest.mark.parametrize("command", [
    ["run", "in.jsonl", "--provider", "local", "--run", 'my"run'],
    ["worker", "--db", "postgresql://u@127.0.0.1:9/db", "--run", 'my"run'],
])
def test_a_bad_run_name_on_the_cli_is_one_line_and_exit_2(tmp_path: Path,
                                                          command: list[str]) -> None:
    (tmp_path / "in.jsonl").write_bytes(JOBS)
    proc = _cli(command, tmp_path)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert lines == ["laneway: error: --run: run name 'my\"run' contains '\"': use 1 to "
                     "64 of the characters A-Z a-z 0-9 _ . -"], proc.stderr
    assert not (tmp_path / ".laneway").exists()  # refused before a ledger was made
