"""A gateway killed (kill -9) while a Message Batch runs upstream: the restarted gateway
re-attaches to the upstream batch within a couple of seconds (its holder, a process of
this host, is gone), on SQLite and on PostgreSQL, and never submits it again (issue 29,
item 2). Before, on PostgreSQL it waited out the batch's 300 s lease."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

import pgserver
from laneway.local import LocalConfig, RunningLocal
from laneway.local.server import free_port

from .helpers import wait_for

MODEL = "claude-haiku-4-5"
LANEWAY = str(Path(sys.executable).with_name("laneway"))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def dsn(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "ledger.db")
        return
    try:
        server = pgserver.find_postgres()
        pgserver.wait_ready(server)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    name, found = pgserver.new_schema(server)
    yield found
    pgserver.drop_schema(server, name)


def serve(upstream: str, db: str, port: int, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env |= {"ANTHROPIC_BASE_URL": upstream, "LANEWAY_BATCH_POLL_S": "0.05,0.2"}
    proc = subprocess.Popen([LANEWAY, "serve", "--port", str(port), "--provider", "anthropic",
                             "--db", db], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(400):
        assert proc.poll() is None, proc.communicate()[1]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.05)
    raise AssertionError("laneway serve did not start")


@pytest.mark.parametrize("local_api", [LocalConfig(batch_min_s=4)], indirect=True)
def test_a_killed_gateways_batch_is_taken_up_at_once(local_api: RunningLocal, dsn: str,
                                                     tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    client = anthropic.Anthropic(base_url=url, api_key="any", max_retries=0)
    proc = serve(local_api.base_url, dsn, port, tmp_path)
    try:
        batch = client.messages.batches.create(requests=[
            {"custom_id": f"q-{i}", "params": {
                "model": MODEL, "max_tokens": 16,
                "messages": [{"role": "user", "content": f"Question {i}."}]}}
            for i in range(3)])
        upstream = local_api.api.batches.batches
        wait_for(lambda: len(upstream) == 1, what="the upstream batch")
        submitted_at = time.monotonic()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    proc = serve(local_api.base_url, dsn, port, tmp_path)
    try:
        restarted_at = time.monotonic()

        def ended() -> bool:
            got = client.messages.batches.retrieve(batch.id)
            return got.processing_status == "ended"

        wait_for(ended, timeout_s=30, what="the batch to end")
        # The upstream batch ends 4 s after it was made; the gateway saw it within a
        # couple of seconds of that (not after a lease of 300 s).
        took_s = time.monotonic() - max(restarted_at, submitted_at + 4)
        assert took_s < 5, took_s
        assert len(local_api.api.batches.batches) == 1  # re-attached, not sent again
        results = list(client.messages.batches.results(batch.id))
        assert sorted(r.result.type for r in results) == ["succeeded"] * 3
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)
