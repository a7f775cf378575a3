"""A failed ingest leaves no runnable run: it is marked, never sent, explained, replaced.

The CLI runs in subprocesses against the local API on loopback; what the server
answered is counted (``LocalAPI.completions``), so "nothing sent" means nothing paid.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import inprocess
from laneway.local import RunningLocal
from laneway.store import open_store
from laneway.store.statuses import JobStatus, RunStatus

LANEWAY = [sys.executable, "-m", "laneway"]
N, BAD_LINE = 2600, 2501  # ingest commits 2,000 jobs in its first chunk, then meets it
SMALL_N, SMALL_BAD_LINE = 40, 30


def cli(args: list[str], *, base_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``laneway ARGS`` in this process (``inprocess``): what it prints and its exit code."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="250")
    return inprocess.laneway(args, env=env, cwd=cwd)


def write_input(path: Path, *, bad: bool, n: int = N, bad_line: int = BAD_LINE) -> Path:
    lines = []
    for i in range(n):
        prompt: object = f"line {i + 1} of the input"
        if bad and i + 1 == bad_line:
            prompt = 3
        lines.append(json.dumps({"id": f"job-{i}", "prompt": prompt}) + "\n")
    path.write_text("".join(lines))
    return path


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr
    errors = [x for x in res.stderr.splitlines() if "error" in x]
    assert len(errors) == 1, res.stderr
    return errors[0]


def test_failed_ingest_is_marked_explained_and_never_sent(tmp_path: Path,
                                                         local_api: RunningLocal) -> None:
    """`--no-work` fails at line 2,501 with 2,000 jobs in: the run is `ingest_failed`,
    `status` says where and what to do, nothing of it is claimed or sent."""
    url = local_api.base_url
    write_input(tmp_path / "in.jsonl", bad=True)
    res = cli(["run", "in.jsonl", "--no-work"], base_url=url, cwd=tmp_path)
    assert res.returncode == 2
    assert f"in.jsonl:{BAD_LINE}: prompt: must be a non-empty string" in one_error_line(res)

    status = cli(["status"], base_url=url, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "ingest_failed" in status.stdout
    assert (f"ingest failed at line {BAD_LINE}: prompt: must be a non-empty string; fix "
            "the input and run the same command again") in " ".join(status.stdout.split())
    store = open_store(tmp_path / ".laneway" / "laneway.db")
    try:
        [failed] = store.list_runs()
        assert failed.status == RunStatus.INGEST_FAILED and failed.total == 2000
        assert store.claim(failed.id, worker="w", limit=10, lease_s=60) == []
    finally:
        store.close()

    # The same command on the same (bad) input: refused again, and nothing is sent.
    again = cli(["run", "in.jsonl", "-o", "out.jsonl"], base_url=url, cwd=tmp_path)
    assert again.returncode == 2 and f"in.jsonl:{BAD_LINE}" in one_error_line(again)
    assert local_api.api.completions.total == 0
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("named", [False, True])
def test_the_fixed_input_replaces_the_failed_run(tmp_path: Path, local_api: RunningLocal,
                                                 named: bool) -> None:
    """The same command on the fixed input replaces the run whose ingest failed (before:
    a named run was refused as "started with different input")."""
    url = local_api.base_url
    name = ["--run", "docs"] if named else []
    write_input(tmp_path / "in.jsonl", bad=True, n=SMALL_N, bad_line=SMALL_BAD_LINE)
    res = cli(["run", "in.jsonl", *name], base_url=url, cwd=tmp_path)
    assert res.returncode == 2 and f"in.jsonl:{SMALL_BAD_LINE}" in one_error_line(res)
    write_input(tmp_path / "in.jsonl", bad=False, n=SMALL_N)
    fixed = cli(["run", "in.jsonl", *name, "-o", "out.jsonl", "--mode", "realtime"],
                base_url=url, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    done = local_api.api.completions
    assert done.total == SMALL_N and not done.more_than_once()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == SMALL_N
    store = open_store(tmp_path / ".laneway" / "laneway.db")
    try:
        runs = store.list_runs()
        assert len(runs) == 1 and runs[0].status == "done" and runs[0].note is None
    finally:
        store.close()



@pytest.mark.postgres
def test_worker_never_works_on_a_failed_ingest(tmp_path: Path, local_api: RunningLocal,
                                              pg: str) -> None:
    """`laneway run --no-work` fails at line 2,501 (2,000 jobs in): `laneway worker`
    sends none of them, says why, and exits non-zero instead of waiting forever."""
    url = local_api.base_url
    write_input(tmp_path / "in.jsonl", bad=True)
    res = cli(["run", "in.jsonl", "--db", pg, "--no-work", "--run", "half"], base_url=url,
              cwd=tmp_path)
    assert res.returncode == 2
    worker = cli(["worker", "--db", pg, "--concurrency", "4"], base_url=url, cwd=tmp_path)
    assert worker.returncode == 3, worker.stderr
    assert f"ingest failed at line {BAD_LINE}" in " ".join(worker.stderr.split())
    assert local_api.api.completions.total == 0
    store = open_store(pg)
    try:
        counts = store.counts("half")
        assert counts.total == 2000 and counts[JobStatus.PENDING] == 2000
    finally:
        store.close()
