"""A gateway killed with streams in flight (kill -9): every request that reached its
reservation has its row after the restart, charged its worst case and held on its key
until ``laneway keys settle`` releases it; and ``keys set`` / ``keys list`` as an
operator uses them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from inprocess import main
from laneway.local import RunningLocal
from laneway.local.server import free_port
from laneway.store import open_store
from laneway.store import schema as S
from laneway.store.reservations import Reservation

MODEL = "claude-haiku-4-5"
LANEWAY = str(Path(sys.executable).with_name("laneway"))
STREAMS = 8


def serve(upstream: str, db: Path, port: int, *options: str,
          tries: int = 300) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    proc = subprocess.Popen([LANEWAY, "serve", "--port", str(port), "--provider", "anthropic",
                             "--db", str(db), *options],
                            env={**env, "ANTHROPIC_BASE_URL": upstream},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for _ in range(tries):
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("laneway serve did not start")


def hold_a_stream(url: str, secret: str, started: threading.Semaphore) -> None:
    body = {"model": MODEL, "max_tokens": 400, "stream": True,
            "messages": [{"role": "user", "content": "word " * 300}]}
    try:
        with httpx.stream("POST", url + "/v1/messages", json=body, timeout=30,
                          headers={"x-api-key": secret, "anthropic-version": "2023-06-01"}
                          ) as r:
            for _ in r.iter_bytes():
                started.release()
                time.sleep(60)
    except httpx.HTTPError:
        pass  # the server was killed


def hold_streams(url: str, secret: str, *, timeout_s: float) -> None:
    """:data:`STREAMS` streams of ``secret``'s, each past its first bytes on return."""
    started = threading.Semaphore(0)
    threads = [threading.Thread(target=hold_a_stream, args=(url, secret, started),
                                daemon=True) for _ in range(STREAMS)]
    for t in threads:
        t.start()
    for _ in threads:
        assert started.acquire(timeout=timeout_s)


def rows(db: Path) -> list[dict[str, object]]:
    store = open_store(str(db))
    try:
        with store.engine.connect() as conn:
            return [dict(r) for r in conn.execute(
                S.gateway_requests.select()).mappings()]
    finally:
        store.close()


@pytest.mark.local_config(token_ms=50.0)
def test_kill_9_with_streams_in_flight_leaves_every_row(
        local_api: RunningLocal, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "ledger.db"
    store = open_store(str(db))
    _, secret = store.create_key("crashy", budget_usd=5.0)
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(local_api.base_url, db, port)
    hold_streams(url, secret, timeout_s=20)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    in_flight = rows(db)
    assert len(in_flight) == STREAMS and {r["state"] for r in in_flight} == {"reserved"}
    worst = sum(float(r["worst_usd"]) for r in in_flight)  # type: ignore[arg-type]
    proc = serve(local_api.base_url, db, port)  # the restart settles what was in flight
    try:
        after = rows(db)
        assert len(after) == STREAMS and {r["state"] for r in after} == {"interrupted"}
        assert sum(float(r["cost_usd"]) for r in after) == pytest.approx(worst)  # type: ignore[arg-type]
        assert main(["keys", "list", "--json", "--db", str(db)]) == 0
        listed = capsys.readouterr().out
        assert f'"held_usd": {worst}'[:18] in listed and '"reserved_usd": 0' in listed
        assert main(["keys", "settle", "crashy", "--note", "checked the console",
                     "--db", str(db)]) == 0
        assert f"released {STREAMS} held request(s)" in capsys.readouterr().err
        assert {r["state"] for r in rows(db)} == {"released"}
        assert all("checked the console" in str(r["note"]) for r in rows(db))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


def test_keys_set_changes_a_live_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    db = str(tmp_path / "l.db")
    assert main(["keys", "create", "app", "--budget-usd", "1", "--db", db]) == 0
    assert main(["keys", "set", "app", "--budget-usd", "2.5", "--rpm", "7", "--db", db]) == 0
    assert "budget $2.50, 7 requests per minute" in capsys.readouterr().err
    assert main(["keys", "set", "app", "--no-budget", "--db", db]) == 0
    assert main(["keys", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "reserved" in out and "held" in out
    assert main(["keys", "set", "app", "--db", db]) == 2
    assert "give --budget-usd" in capsys.readouterr().err
    # A request left in flight by a host that never came back: settled by age.
    store = open_store(db)
    try:
        key = store.list_keys()[0]
        store.reserve(Reservation(key_id=key.id, model=MODEL, lane="background",
                                  streamed=False, worst_usd=0.25, started_at=time.time() - 900,
                                  process="elsewhere:1:x"))
    finally:
        store.close()
    assert main(["keys", "settle", "app", "--older-than", "600", "--db", db]) == 0
    assert "released 1 held request(s), $0.2500" in capsys.readouterr().err



def _workers_of(proc: subprocess.Popen[str]) -> set[int]:
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return {int(c) for c in children}


@pytest.mark.local_config(token_ms=50.0)
def test_serve_workers_share_a_keys_rate_and_a_killed_worker_loses_no_row(
        local_api: RunningLocal, tmp_path: Path) -> None:
    """``serve --workers 2`` (real processes, one SQLite ledger): an rpm-4 key's 12
    requests at once are 4 sent upstream, 8 answered 429, whichever worker took them;
    then a worker killed with streams in flight leaves a row for each, interrupted (worst
    case, held) by the next process to start."""
    db = tmp_path / "ledger.db"
    store = open_store(str(db))
    _, limited = store.create_key("limited", rpm=4)
    streaming, secret = store.create_key("streams", budget_usd=5.0)
    store.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # 120 s to answer: serve --workers 2 on a loaded 2-core machine.
    proc = serve(local_api.base_url, db, port, "--workers", "2", tries=2400)
    try:
        deadline = time.monotonic() + 120
        while len(_workers_of(proc)) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "serve --workers 2 did not start"
            time.sleep(0.1)
        before = local_api.api.completions.completed
        body = {"model": MODEL, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"x-api-key": limited, "anthropic-version": "2023-06-01"}
        statuses: list[int] = []

        def one() -> None:
            with httpx.Client(timeout=60) as http:  # a client each: both workers take some
                statuses.append(http.post(url + "/v1/messages", json=body,
                                          headers=headers).status_code)

        callers = [threading.Thread(target=one) for _ in range(12)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=90)
        assert sorted(statuses) == [200] * 4 + [429] * 8, statuses
        assert local_api.api.completions.completed - before == 4

        hold_streams(url, secret, timeout_s=30)
        in_flight = [r for r in rows(db)
                     if r["state"] == "reserved" and r["key_id"] == streaming.id]
        assert len(in_flight) == STREAMS
        by_pid: dict[int, int] = {}
        for r in in_flight:
            pid = int(str(r["process"]).split(":")[1])
            by_pid[pid] = by_pid.get(pid, 0) + 1
        victim = max(by_pid, key=by_pid.__getitem__)
        assert victim in _workers_of(proc)
        os.kill(victim, signal.SIGKILL)
        time.sleep(1.0)
        # The killed worker's streams kept their rows (no settle will come for them).
        killed = [r for r in rows(db) if f":{victim}:" in str(r["process"])
                  and r["key_id"] == streaming.id]
        assert len(killed) == by_pid[victim]
        assert {r["state"] for r in killed} <= {"reserved", "interrupted"}
    finally:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=30)
        if proc.poll() is None:
            proc.kill()
    restarted = serve(local_api.base_url, db, free_port())  # settles what was in flight
    try:
        left = [r for r in rows(db) if r["state"] in ("reserved", "interrupted")]
        assert not [r for r in left if r["state"] == "reserved"]
        assert len([r for r in left if r["state"] == "interrupted"]) >= by_pid[victim]
    finally:
        restarted.send_signal(signal.SIGINT)
        restarted.communicate(timeout=20)

