"""A disk that fills up under the ledger or the results file: the CLI stops with one line
("disk full: ...; free space and run the same command"), exit 1, and nothing is lost:
the same command, once there is space, finishes the run.

The disk is a small tmpfs (mounting needs root: skipped otherwise).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from laneway.local import RunningLocal

LANEWAY = [sys.executable, "-m", "laneway"]


@contextlib.contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with one file; returns it (delete it to free space)."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:
            while True:
                f.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="200")
    return env


def make_input(path: Path, n: int, *, words: int = 5) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text {i} " + "w " * words})
                            + "\n" for i in range(n)))
    return path


def succeeded(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute(
                "SELECT count(*) FROM jobs WHERE status = 'succeeded'").fetchone()[0])
    except sqlite3.Error:
        return 0


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [x for x in stderr.splitlines() if "error" in x]
    assert len(lines) == 1, stderr
    assert "disk full:" in lines[0] and "free space and run the same command" in lines[0]
    return lines[0]


def check_output_file(path: Path, n: int) -> None:
    ids = [json.loads(x)["custom_id"] for x in path.read_text().splitlines()]
    assert ids == [f"doc-{i}" for i in range(n)]


@pytest.mark.timeout(180)
@pytest.mark.local_config(token_ms=2.0)
def test_disk_fills_mid_run(tmp_path: Path, local_api: RunningLocal) -> None:
    n, concurrency = 600, 8
    make_input(tmp_path / "in.jsonl", n)
    env = env_for(local_api.base_url)
    with small_disk(tmp_path / "disk", "24m") as disk:
        db = disk / "l.db"
        args = ["run", "in.jsonl", "-o", "out.jsonl", "--db", str(db), "--mode", "realtime",
                "--concurrency", str(concurrency), "-q"]
        proc = subprocess.Popen([*LANEWAY, *args], env=env, cwd=tmp_path, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while succeeded(db) < 20 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        filler = fill(disk)
        try:
            _out, err = proc.communicate(timeout=30)  # it stops by itself, soon
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                pytest.fail("a full disk hung the run, and SIGTERM did not end it")
            pytest.fail("a full disk hung the run (SIGTERM ended it)")
        assert proc.returncode == 1, err
        one_line(err)
        done_before = succeeded(db)
        assert done_before < n
        assert not (tmp_path / "out.jsonl").exists()
        answered_before = local_api.api.stats["ok"]

        filler.unlink()  # space again: the same command finishes the run
        res = subprocess.run([*LANEWAY, *args], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        check_output_file(tmp_path / "out.jsonl", n)
        # Nothing recorded is answered again; at most what was in flight or not yet
        # committed when the disk filled (the concurrency bounds both together).
        answered = local_api.api.stats["ok"]
        print(f"recorded before the disk filled: {done_before}; answered: "
              f"{answered_before} then {answered - answered_before}")
        assert answered <= n + concurrency + 2  # (two workers admitted at once: +1)
        assert answered - answered_before == n - done_before


@pytest.mark.timeout(120)
def test_disk_fills_during_ingest(tmp_path: Path, local_api: RunningLocal) -> None:
    n = 3000
    make_input(tmp_path / "in.jsonl", n, words=200)  # ~1.2 kB a line: more than the disk
    env = env_for(local_api.base_url)
    with small_disk(tmp_path / "disk", "2m") as disk:
        args = ["run", "in.jsonl", "-o", "out.jsonl", "--db", str(disk / "l.db"), "-q"]
        res = subprocess.run([*LANEWAY, *args], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=60)
        assert res.returncode == 1, res.stderr
        one_line(res.stderr)
        assert local_api.api.stats["requests"] == 0
    with small_disk(tmp_path / "disk2", "64m") as disk:  # a bigger disk: the same command
        args = ["run", "in.jsonl", "-o", "out.jsonl", "--db", str(disk / "l.db"), "-q"]
        res = subprocess.run([*LANEWAY, *args], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=90)
        assert res.returncode == 0, res.stderr
        check_output_file(tmp_path / "out.jsonl", n)


@pytest.mark.timeout(120)
def test_disk_full_writing_results(tmp_path: Path, local_api: RunningLocal) -> None:
    n = 1500
    make_input(tmp_path / "in.jsonl", n, words=400)  # results of ~1 kB each: over 1 MB
    env = env_for(local_api.base_url)
    res = subprocess.run([*LANEWAY, "run", "in.jsonl", "--run", "r", "-q"], env=env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=90)
    assert res.returncode == 0, res.stderr
    with small_disk(tmp_path / "disk", "1m") as disk:
        out = disk / "out.jsonl"
        out.write_text("previous results\n")
        for fmt in ("jsonl", "text"):
            res = subprocess.run([*LANEWAY, "results", "r", "-o", str(out), "--format", fmt],
                                 env=env, cwd=tmp_path, capture_output=True, text=True,
                                 timeout=60)
            assert res.returncode == 1, res.stderr
            one_line(res.stderr)
            assert out.read_text() == "previous results\n"
            assert sorted(p.name for p in disk.iterdir()) == ["out.jsonl"]  # no part left
        # `laneway run -o` to the full disk: the same one line, and the file is untouched.
        res = subprocess.run([*LANEWAY, "run", "in.jsonl", "--run", "r", "-o", str(out), "-q"],
                             env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert res.returncode == 1, res.stderr
        one_line(res.stderr)
        assert out.read_text() == "previous results\n"
        assert sorted(p.name for p in disk.iterdir()) == ["out.jsonl"]
