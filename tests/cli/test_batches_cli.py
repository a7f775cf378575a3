"""`laneway estimate` and `laneway cancel` as a user runs them, in subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inprocess import main
from laneway.local import LocalConfig, start_local

LANEWAY = [sys.executable, "-m", "laneway"]

MODEL = "claude-sonnet-4-6"


def env_for(base_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    if base_url:
        env["ANTHROPIC_BASE_URL"] = base_url
    env.update(COLUMNS="200", LANEWAY_BATCH_POLL_S="0.1,0.3")
    return env


def sqlite_batches(db: Path) -> list[tuple[str, str | None]]:
    """``(status, provider_batch_id)`` of the ledger's batches, read without opening the
    store (which would migrate, racing the process that is creating it)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return list(conn.execute("SELECT status, provider_batch_id FROM batches"))
    except sqlite3.Error:
        return []


def make_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text number {i} here"})
                            + "\n" for i in range(n)))
    return path


def test_estimate_shows_both_modes_side_by_side(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    make_input(tmp_path / "in.jsonl", 100)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")  # never contacted
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["estimate", "in.jsonl", "--model", MODEL, "--rpm", "1000", "--itpm",
                 "450000", "--otpm", "90000", "--deadline", "1d"]) == 0
    out = capsys.readouterr().out
    assert "100 jobs: claude-sonnet-4-6 (100)" in out
    assert "realtime" in out and "native" in out and "worst case" in out
    assert "--mode auto would choose hybrid" in out
    assert main(["estimate", "in.jsonl", "--json", "--model", MODEL]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jobs"] == 100
    assert data["native"]["cost_usd"] == data["realtime"]["cost_usd"] / 2
    assert data["expected_output_tokens"] == 100 * 400
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "prompt": "x"}\nnot json\n')
    assert main(["estimate", "bad.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:2" in err and "Traceback" not in err


def test_cancel_stops_a_native_run_and_keeps_what_was_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    running = start_local(LocalConfig(ttft_ms=200, batch_concurrency=1))
    try:
        env = env_for(running.base_url)
        make_input(tmp_path / "in.jsonl", 20)  # 4 s of batch work
        args = [*LANEWAY, "run", "in.jsonl", "-o", "out.jsonl", "--mode", "native", "-q",
                "--model", MODEL, "--run", "nightly"]
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        db = tmp_path / ".laneway" / "laneway.db"

        deadline = time.monotonic() + 20
        while not any(pid for _status, pid in sqlite_batches(db)):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.05)
        time.sleep(0.5)
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", running.base_url)
        assert main(["cancel", "nightly", "--wait", "20"]) == 0
        err = capsys.readouterr().err
        assert "run nightly canceled" in err and "1 batch(es) canceled" in err
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        kinds = [r["result"]["type"] for r in rows]
        assert len(rows) == 20 and set(kinds) <= {"succeeded", "canceled"}
        assert "canceled" in kinds
        batch = running.api.batches.batches[next(iter(running.api.batches.batches))]
        assert batch.cancel_initiated_at is not None
        assert kinds.count("succeeded") == batch.counts()["succeeded"]
        assert main(["cancel", "nope"]) == 2
        assert "no run named 'nope'" in capsys.readouterr().err
    finally:
        running.stop()
