"""Re-attaching: after a real SIGKILL while polling, and for a batch whose ``create``
answer never reached the ledger (the ``submitting`` window)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import anthropic
import pytest

from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.provider.batches import Batches
from laneway.provider.client import Provider
from laneway.runners.native.submit import new_batch_id
from laneway.runners.native.wire import encode_request
from laneway.runs.library import run
from laneway.store import BatchStatus, open_store
from laneway.store import schema as S

from .helpers import (
    MODEL,
    ledger_statuses,
    make_input,
    read_output,
    server_batches,
    wait_until,
)
from .test_native import DEFAULTS, fast

LANEWAY = [sys.executable, "-m", "laneway"]


def test_reattach_after_sigkill_during_polling(tmp_path: Path) -> None:
    running = start_local(LocalConfig(batch_min_s=4.0))
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
        env.update(ANTHROPIC_BASE_URL=running.base_url, LANEWAY_BATCH_POLL_S="0.1,0.3",
                   LANEWAY_BATCH_MAX_REQUESTS="10", COLUMNS="200")
        make_input(tmp_path / "in.jsonl", 30)
        args = [*LANEWAY, "run", "in.jsonl", "-o", "out.jsonl", "--mode", "native", "-q",
                "--model", MODEL]
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        db = tmp_path / ".laneway" / "laneway.db"

        def all_submitted() -> bool:
            rows = ledger_statuses(db)
            return len(rows) == 3 and all(status == BatchStatus.SUBMITTED for status, _ in rows)

        wait_until(all_submitted, what="three batches submitted")
        assert proc.poll() is None  # still polling: the batches take 4 s
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        res = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        assert "re-attaching to 3 batch(es)" in res.stderr
        rows = read_output(tmp_path / "out.jsonl")
        assert [r["custom_id"] for r in rows] == [f"doc-{i}" for i in range(30)]
        assert all(r["result"]["type"] == "succeeded" for r in rows)
        client = anthropic.Anthropic(base_url=running.base_url, api_key="t", max_retries=0)
        assert len(list(client.messages.batches.list(limit=100))) == 3  # none twice
    finally:
        running.stop()


async def _half_submitted(tmp_path: Path, base_url: str, *, create: bool
                          ) -> tuple[str, str]:
    """Ingest a run and record one batch as ``submitting`` as if the process had died
    inside ``create``: the batch is (``create=True``) or is not at the provider."""
    inp = make_input(tmp_path / "in.jsonl", 12)
    provider = Provider.at(base_url)
    summary = await run(inp, None, provider=provider, db=tmp_path / "l.db", no_work=True,
                        defaults=DEFAULTS)
    store = open_store(str(tmp_path / "l.db"))
    jobs = store.claim(summary.run_id, worker="main", limit=100, lease_s=60)
    batch_id = new_batch_id()
    parts = [encode_request(j.seq, batch_id, j.params) for j in jobs]
    assert store.begin_batch(run_id=summary.run_id, batch_id=batch_id,
                          seqs=[j.seq for j in jobs], size_bytes=0, worker="main")
    store.close()
    if create:
        await Batches(provider).create(b'{"requests":[' + b",".join(parts) + b"]}")
    await provider.aclose()
    return summary.run_id, batch_id


async def _decoy(base_url: str, n: int) -> None:
    """Someone else's batch of the same size (same shape of ids, another batch tag)."""
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key="t", max_retries=0) as c:
        await c.messages.batches.create(requests=[{
            "custom_id": f"j{i}_bdecoy", "params": {
                "model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        } for i in range(n)])


async def test_lost_create_answer_is_found_and_adopted(tmp_path: Path,
                                                       local_api: RunningLocal) -> None:
    _run_id, batch_id = await _half_submitted(tmp_path, local_api.base_url, create=True)
    await _decoy(local_api.base_url, 12)
    notices: list[str] = []
    provider = Provider.at(local_api.base_url)
    summary = await run(tmp_path / "in.jsonl", tmp_path / "out.jsonl", provider=provider,
                        db=tmp_path / "l.db", mode="native", defaults=DEFAULTS,
                        native=fast(), on_notice=notices.append)
    await provider.aclose()
    assert (summary.succeeded, summary.pending) == (12, 0)
    assert len(await server_batches(local_api.base_url)) == 2  # ours and the decoy only
    assert any(f"batch {batch_id}: found it at the provider" in n for n in notices)
    texts = [r["result"]["message"]["content"][0]["text"] for r in
             read_output(tmp_path / "out.jsonl")]
    assert texts[3] == " ".join(f"w3x{k}" for k in range(5))  # its own answer, not x


async def test_create_that_never_happened_is_sent_again(tmp_path: Path,
                                                        local_api: RunningLocal) -> None:
    run_id, batch_id = await _half_submitted(tmp_path, local_api.base_url, create=False)
    notices: list[str] = []
    provider = Provider.at(local_api.base_url)
    summary = await run(tmp_path / "in.jsonl", None, provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS, native=fast(),
                        on_notice=notices.append)
    await provider.aclose()
    assert (summary.succeeded, summary.pending) == (12, 0)
    assert len(await server_batches(local_api.base_url)) == 1
    assert any("has no such batch" in n for n in notices)
    store = open_store(str(tmp_path / "l.db"))
    statuses = {r.id: r.status for r in store.run_batches(run_id)}
    with store.engine.connect() as conn:
        attempts = {a for (a,) in conn.execute(
            S.jobs.select().with_only_columns(S.jobs.c.attempts))}
    store.close()
    assert statuses[batch_id] == BatchStatus.LOST and attempts == {1}  # the lost try is not counted


@pytest.mark.local_config(batch_min_s=1.5)
async def test_running_candidate_is_waited_for_not_resent(tmp_path: Path,
                                                          local_api: RunningLocal) -> None:
    await _half_submitted(tmp_path, local_api.base_url, create=True)
    notices: list[str] = []
    provider = Provider.at(local_api.base_url)
    summary = await run(tmp_path / "in.jsonl", None, provider=provider, db=tmp_path / "l.db",
                        mode="native", defaults=DEFAULTS, native=fast(),
                        on_notice=notices.append)
    await provider.aclose()
    assert (summary.succeeded, summary.pending) == (12, 0)
    assert len(await server_batches(local_api.base_url)) == 1
    assert any("still running" in n and "never sent twice" in n for n in notices)
    assert any("found it at the provider" in n for n in notices)
    assert json.dumps(notices).count("still running") == 1  # said once, not every poll
