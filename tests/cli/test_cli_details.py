"""The CLI's details (issue 25, item 6), each as a user meets it at 80 columns: whole run
names in `laneway runs`, `--help` that reads well, "nothing to send" on a finished
re-run, the bad-JSON column where the problem is, suggestions only for close matches,
`status` naming the mode that ran, and `-o` checked for being writable before anything
is sent. In this process (``inprocess``), against the local API (echo engine)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from typer.main import get_command

import inprocess
from laneway.cli import app
from laneway.local import RunningLocal

COMMANDS = [["local"], ["ask"], ["run"], ["runs"], ["status"], ["results"], ["chat"],
            ["serve"], ["worker"], ["cancel"], ["estimate"], ["keys"], ["keys", "create"],
            ["keys", "list"], ["keys", "set"], ["keys", "settle"], ["keys", "revoke"], []]


def laneway(args: list[str], cwd: Path, base_url: str = "http://127.0.0.1:9",
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="80")
    return inprocess.laneway(args, env=env, cwd=cwd)


def jobs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text {i}"}) + "\n"
                            for i in range(n)))
    return path


def one_error(res: subprocess.CompletedProcess[str], code: int = 2) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == code, res.stderr
    errors = [line for line in res.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, res.stderr
    return errors[0]


def test_runs_shows_whole_run_names(tmp_path: Path, local_api: RunningLocal) -> None:
    name = "articles-03fe3a9c41d2-realtime-claude-haiku-4-5-summaries"
    jobs(tmp_path / "in.jsonl", 2)
    assert laneway(["run", "in.jsonl", "--run", name, "-q"], tmp_path,
                   local_api.base_url).returncode == 0
    out = laneway(["runs"], tmp_path).stdout
    assert all(len(line) <= 80 for line in out.splitlines()), out
    assert out.split()[:8] == ["run", "status", "mode", "jobs", "done", "failed", "cost",
                                "started"], out  # no column cut off either
    assert "…" not in out
    assert name in "".join(re.findall(r"^(\S+)", out, flags=re.M)), out  # folded, whole


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "laneway" for c in COMMANDS])
def test_help_reads_well_at_80_columns(tmp_path: Path, command: list[str]) -> None:
    """No line over 80 columns, no text cut short ("…" or a trailing "..."), every
    option named whole, and each paragraph of the description filled (a line cut
    mid-paragraph left one word on a line of its own)."""
    res = laneway([*command, "--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), text
    assert "…" not in text
    assert not [x for x in lines if x.endswith("...") and not x.endswith(
        ("postgresql://...", "[ARGS]..."))]
    cmd = get_command(app)
    for part in command:
        cmd = cmd.commands[part]  # type: ignore[attr-defined]
    for param in cmd.params:
        for opt in [*param.opts, *param.secondary_opts]:
            if opt.startswith("-"):
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,]|$)", text, re.M), opt
    description = text.split("\n\n", 1)[1].split("\nOptions:", 1)[0].split("\nArguments:")[0]
    for paragraph in description.split("\n\n"):
        body = [x for x in paragraph.splitlines() if x.strip()]
        if body and body[0].startswith("  ") and not body[0].startswith("    "):
            assert all(len(x) >= 55 for x in body[:-1]), paragraph


def test_a_finished_rerun_says_nothing_to_send(tmp_path: Path,
                                                local_api: RunningLocal) -> None:
    jobs(tmp_path / "in.jsonl", 3)
    first = laneway(["run", "in.jsonl", "-q"], tmp_path, local_api.base_url)
    assert first.returncode == 0 and "nothing to send" not in first.stderr
    sent = local_api.api.stats["requests"]
    again = laneway(["run", "in.jsonl", "-q"], tmp_path, local_api.base_url)
    assert again.returncode == 0, again.stderr
    assert "nothing to send: all 3 jobs" in again.stderr and "finished" in again.stderr
    assert local_api.api.stats["requests"] == sent


@pytest.mark.parametrize(("line", "where"), [
    ('{"id": "a", "prompt": "hi"', "at the end of the line, column 27"),
    ('{"id": "a", "prompt": "hi",}', "column 28"),
    ('{"id": "a" "prompt": "hi"}', "column 12"),
])
def test_bad_json_is_placed_where_the_problem_is(tmp_path: Path, line: str,
                                                 where: str) -> None:
    (tmp_path / "in.jsonl").write_text(line + "\n")
    error = one_error(laneway(["run", "in.jsonl"], tmp_path))
    assert "in.jsonl:1:" in error and where in error, error
    assert "column 1)" not in error


@pytest.mark.parametrize(("typed", "suggested"), [
    ("--frobnicate", None), ("--modle", "--model"), ("--budjet", "--budget"),
    ("--concurency", "--concurrency"),
])
def test_suggestions_only_for_close_matches(tmp_path: Path, typed: str,
                                            suggested: str | None) -> None:
    error = one_error(laneway(["run", "in.jsonl", typed], tmp_path))
    assert f"No such option: {typed}" in error
    if suggested is None:
        assert "Possible options" not in error and "--price" not in error, error
    else:
        assert suggested in error, error


def test_status_shows_the_mode_that_ran(tmp_path: Path, local_api: RunningLocal) -> None:
    jobs(tmp_path / "in.jsonl", 2)
    assert laneway(["run", "in.jsonl", "-q"], tmp_path, local_api.base_url).returncode == 0
    status = laneway(["status"], tmp_path).stdout
    mode = re.search(r"\bmode\W+(\w+)", status)
    assert mode is not None and mode.group(1) == "realtime", status
    assert "…" not in status  # the input's path whole too
    assert re.search(r"\brealtime\b", laneway(["runs"], tmp_path).stdout)


def test_an_output_where_no_file_can_be_made_is_refused_first(
        tmp_path: Path, local_api: RunningLocal) -> None:
    """/proc takes no new file, even from root: one line, exit 2, nothing sent."""
    jobs(tmp_path / "in.jsonl", 2)
    res = laneway(["run", "in.jsonl", "-o", "/proc/results.jsonl"], tmp_path,
                  local_api.base_url)
    error = one_error(res)
    assert "-o /proc/results.jsonl" in error and "no file can be made" in error, error
    assert len(res.stderr.splitlines()) <= 2, res.stderr  # the local-API notice at most
    assert local_api.api.stats["requests"] == 0
