"""`laneway run/status/results/runs/ask` as a user runs them: the main job in a subprocess,
the rest through ``laneway.cli.main`` in this process (``inprocess``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import inprocess
from laneway.local import LocalConfig, RunningLocal, start_local

LANEWAY = [sys.executable, "-m", "laneway"]


def cli(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``laneway ARGS`` in this process (``inprocess``): what it prints and its exit code."""
    return inprocess.laneway(args, env=env, cwd=cwd)


def real_cli(args: list[str], *, env: dict[str, str], cwd: Path,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m laneway ARGS``: the real command, in a process of its own."""
    return subprocess.run([*LANEWAY, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env["ANTHROPIC_BASE_URL"] = base_url
    env["COLUMNS"] = "200"
    return env


def make_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text number {i} here"}) + "\n"
                            for i in range(n)))
    return path


def test_run_status_results_runs(tmp_path: Path, local_api: RunningLocal) -> None:
    env = env_for(local_api.base_url)
    make_input(tmp_path / "in.jsonl", 25)
    done = real_cli(["run", "in.jsonl", "-o", "out.jsonl", "--run", "docs"], env=env,
                    cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "25 succeeded" in done.stderr
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert [json.loads(x)["custom_id"] for x in lines] == [f"doc-{i}" for i in range(25)]

    status = cli(["status", "docs"], env=env, cwd=tmp_path)
    assert status.returncode == 0 and "succeeded" in status.stdout and "25" in status.stdout
    runs = cli(["runs"], env=env, cwd=tmp_path)
    assert "docs" in runs.stdout
    text = cli(["results", "docs", "--format", "text"], env=env, cwd=tmp_path)
    assert "== doc-3\ntext number 3 here" in text.stdout
    jsonl = cli(["results", "docs"], env=env, cwd=tmp_path)
    assert jsonl.stdout.splitlines() == lines
    missing = cli(["results", "nope"], env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no run named 'nope'" in missing.stderr


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": 3}\n', "in.jsonl:2: prompt: must be a non-empty string"),
    ('{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n', "in.jsonl:2: custom_id: duplicate id 'a' (first at line 1)"),
    ('', "in.jsonl: no jobs"),
    ('{"id": "a", "prompt": "x"}\n{oops\n', "in.jsonl:2: invalid JSON"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path: Path, local_api: RunningLocal,
                                           content: str, message: str) -> None:
    (tmp_path / "in.jsonl").write_text(content)
    res = cli(["run", "in.jsonl", "-o", "out.jsonl"], env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr
    assert "Traceback" not in res.stderr
    assert len([x for x in res.stderr.splitlines() if "error" in x]) == 1
    assert not (tmp_path / "out.jsonl").exists()


def test_skip_invalid_records_bad_lines(tmp_path: Path, local_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "x"}\nnot json\n{"id": "c", "prompt": "z"}\n')
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", "--skip-invalid"],
              env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["result"]["type"] for r in rows] == ["succeeded", "errored", "succeeded"]
    assert "in.jsonl:2" in rows[1]["result"]["error"]["error"]["message"]


def test_missing_file_and_bad_options(tmp_path: Path, local_api: RunningLocal) -> None:
    env = env_for(local_api.base_url)
    res = cli(["run", "nope.jsonl"], env=env, cwd=tmp_path)
    assert res.returncode == 2 and "nope.jsonl: no such file" in res.stderr
    res = cli(["run", "nope.jsonl", "--mode", "fast"], env=env, cwd=tmp_path)
    assert res.returncode == 2 and "--mode 'fast'" in res.stderr
    res = cli(["run", "x.jsonl", "--deadline", "soonish"], env=env, cwd=tmp_path)
    assert res.returncode == 2 and "--deadline" in res.stderr


def test_resume_after_sigkill(tmp_path: Path) -> None:
    """Kill -9 mid-run, run the same command again: nothing lost, nothing duplicated,
    and no more requests sent twice than were in flight."""
    running = start_local(LocalConfig(ttft_ms=30))
    try:
        env = env_for(running.base_url)
        make_input(tmp_path / "in.jsonl", 400)
        args = [*LANEWAY, "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", "8", "-q"]
        proc = subprocess.Popen(args, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while running.api.stats["ok"] < 100 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sent_before = running.api.stats["requests"]
        assert 100 <= sent_before < 400
        res = subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
        ids = [r["custom_id"] for r in rows]
        assert ids == [f"doc-{i}" for i in range(400)]
        assert all(r["result"]["type"] == "succeeded" for r in rows)
        assert running.api.stats["requests"] - 400 <= 8 + 1  # in flight at the kill
    finally:
        running.stop()


def test_ask_streams_an_answer(tmp_path: Path, local_api: RunningLocal) -> None:
    res = cli(["ask", "Explain closures in JavaScript"], env=env_for(local_api.base_url),
              cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "Explain closures in JavaScript"
    assert "ttft" in res.stderr and "tok/s" in res.stderr
