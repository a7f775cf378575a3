"""`laneway keys create|list|revoke` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inprocess import main
from laneway.store import open_store

LANEWAY = [sys.executable, "-m", "laneway"]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory of its own: the default ledger is .laneway/laneway.db there."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_create_prints_the_key_alone_on_stdout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    res = subprocess.run([*LANEWAY, "keys", "create", "ci-bot", "--budget-usd", "2.5"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    key = res.stdout.removesuffix("\n")
    assert "\n" not in key and key.startswith("lw_") and len(key) == 46
    assert "shown only now" in res.stderr and key not in res.stderr
    # The default ledger is the one `laneway serve` and `laneway runs` use.
    store = open_store(str(tmp_path / ".laneway" / "laneway.db"))
    try:
        found = store.find_key(key)
        assert found is not None and found.name == "ci-bot" and found.budget_usd == 2.5
    finally:
        store.close()


def test_create_list_revoke(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "keys", "create", "alice", "--rpm", "30", "--lane", "background")
    assert rc == 0
    secret = out.strip()
    rc, out, _ = run(capsys, "keys", "create", "bob", "--budget-usd", "10")
    assert rc == 0
    rc, out, _ = run(capsys, "keys", "list")
    assert rc == 0
    assert "alice" in out and secret[:12] in out and "background" in out and "30" in out
    assert "bob" in out and "$10.00" in out
    assert secret not in out  # only the prefix is ever listed

    rc, _, err = run(capsys, "keys", "revoke", secret[:12])
    assert rc == 0 and "'alice'" in err and "revoked" in err
    rc, _, err = run(capsys, "keys", "revoke", "alice")
    assert rc == 0 and "already revoked" in err

    rc, out, _ = run(capsys, "keys", "list")
    assert "alice" not in out and "bob" in out
    rc, out, _ = run(capsys, "keys", "list", "--all", "--json")
    listed = {k["name"]: k for k in json.loads(out)}
    assert set(listed) == {"alice", "bob"}
    assert listed["alice"]["active"] is False and listed["alice"]["revoked_at"] is not None
    assert listed["alice"]["lane"] == "background" and listed["alice"]["rpm"] == 30
    assert listed["bob"]["budget_usd"] == 10.0 and listed["bob"]["spent_usd"] == 0.0
    assert listed["alice"]["prefix"] == secret[:12]


def test_list_shows_what_a_key_spent(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from laneway.store import TrafficRecord

    store = open_store(str(in_tmp / "other.db"))
    try:
        key, _ = store.create_key("spender", budget_usd=1.0)
        store.record_requests([TrafficRecord(
            key_id=key.id, model="m", lane="interactive", status=200, streamed=True,
            input_tokens=1, output_tokens=1, cache_creation_input_tokens=0,
            cache_read_input_tokens=0, cost_usd=0.4321, queued_s=0.0, ttft_s=0.1,
            duration_s=0.2, upstream_errors=0, started_at=1.0)])
    finally:
        store.close()
    rc, out, _ = run(capsys, "keys", "list", "--db", str(in_tmp / "other.db"))
    assert rc == 0 and "$0.4321" in out and "$1.00" in out


@pytest.mark.parametrize(("args", "expected"), [
    (["keys", "create", "dup"], "a key named 'dup' already exists"),
    (["keys", "revoke", "nobody"], "no key named 'nobody'"),
    (["keys", "create", "has space"], "key name 'has space'"),
])
def test_mistakes_are_one_line_exit_2(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str], expected: str) -> None:
    assert run(capsys, "keys", "create", "dup")[0] == 0
    rc, out, err = run(capsys, *args)
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("laneway: error: "), err
    assert expected in lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    (["keys", "create", "x", "--lane", "fast"], "'--lane'"),
    (["keys", "create", "x", "--budget-usd", "-1"], "'--budget-usd'"),
    (["keys", "create", "x", "--budget-usd", "0"], "must be > 0, not 0"),
    (["keys", "create", "x", "--rpm", "0"], "'--rpm'"),
    (["keys", "create"], "Missing argument 'NAME'"),
    (["keys", "revoke"], "Missing argument 'NAME_OR_PREFIX'"),
])
def test_usage_errors_exit_2(in_tmp: Path, capsys: pytest.CaptureFixture[str],
                             args: list[str], expected: str) -> None:
    rc, out, err = run(capsys, *args)
    lines = err.splitlines()
    assert rc == 2 and out == ""
    assert len(lines) == 2 and lines[0].startswith("Usage: laneway keys")
    assert lines[1].startswith("laneway: error: ") and expected in lines[1]
    assert not (in_tmp / ".laneway").exists()  # refused before the ledger is opened


def test_help_says_what_keys_are_for(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "keys", "--help")
    assert rc == 0
    text = " ".join(out.split())
    for words in ("laneway serve", "ANTHROPIC_API_KEY", "off loopback", "USD",
                  "requests-per-minute", "lane", "create", "list", "revoke"):
        assert words in text, words
