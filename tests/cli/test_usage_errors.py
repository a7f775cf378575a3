"""A mistake on the command line (a missing argument, an unknown option or command, a
value of the wrong type or out of bounds) is the usage line and one error line naming
what is wrong, exit 2: never a traceback, never a hang.

Each case runs `laneway` through ``laneway.cli.main`` in this process (``inprocess``),
with the Typer that the project's dependencies install (0.2x bundles its own click: what
it raises is not ``click.ClickException``); one runs the real ``python -m laneway``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import inprocess

LANEWAY = [sys.executable, "-m", "laneway"]
#: Nothing listens here: if an option were accepted, requests would fail, not hang.
DEAD_API = "http://127.0.0.1:9"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=DEAD_API, ANTHROPIC_API_KEY="test-key", COLUMNS="80")
    return env


def laneway(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return inprocess.laneway(args, env=_env(), cwd=cwd)


def real_laneway(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LANEWAY, *args], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=30, stdin=subprocess.DEVNULL)


def assert_usage_error(res: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert "Traceback" not in res.stderr, res.stderr
    assert res.returncode == 2, res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 2, res.stderr
    assert lines[0].startswith("Usage: laneway")
    assert lines[1].startswith("laneway: error: ")
    for text in expected:
        assert text in lines[1], lines[1]


@pytest.mark.parametrize(("args", "expected"), [
    (["run"], "Missing argument 'IN.jsonl'"),
    (["run", "in.jsonl", "--bogus"], "No such option: --bogus"),
    (["run", "in.jsonl", "--concurrency", "abc"], "'--concurrency'"),
    (["run", "in.jsonl", "--timeout", "soon"], "'--timeout'"),
    (["bogus"], "No such command 'bogus'"),
    (["results"], "Missing argument 'RUN'"),
    (["worker"], "Missing option '--db'"),
    (["runs", "--limit", "many"], "'--limit'"),
])
def test_a_usage_error_is_one_line_and_exit_2(tmp_path: Path, args: list[str],
                                              expected: str) -> None:
    assert_usage_error(laneway(args, tmp_path), expected)


def test_a_usage_error_of_the_real_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    assert_usage_error(real_laneway(["run", "in.jsonl", "--bogus"], tmp_path),
                       "No such option: --bogus")


def test_no_command_prints_the_help(tmp_path: Path) -> None:
    res = laneway([], tmp_path)
    assert "Traceback" not in res.stderr
    assert res.returncode == 2
    assert "Usage: laneway" in res.stderr + res.stdout
    assert "run" in res.stderr + res.stdout


def test_help_still_exits_0(tmp_path: Path) -> None:
    res = laneway(["run", "--help"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "--concurrency" in res.stdout


POSTGRES = "postgresql://nobody@127.0.0.1:9/none"

#: Every numeric option of every command, with a value out of its bounds.
OUT_OF_BOUNDS = [
    *[(["run", "in.jsonl"], opt, v) for opt, v in [
        ("--concurrency", "0"), ("--concurrency", "-3"), ("--max-attempts", "0"),
        ("--max-tokens", "0"), ("--timeout", "0"), ("--timeout", "-1"), ("--timeout", "nan"),
        ("--rpm", "0"), ("--itpm", "0"), ("--otpm", "-5"), ("--budget", "-1")]],
    *[(["estimate", "in.jsonl"], opt, v) for opt, v in [
        ("--max-tokens", "0"), ("--expected-output", "0"), ("--concurrency", "0"),
        ("--rpm", "0"), ("--itpm", "0"), ("--otpm", "0"), ("--budget", "0")]],
    (["cancel", "r1"], "--wait", "-1"),
    *[(["ask", "hi"], opt, v) for opt, v in [
        ("--max-tokens", "0"), ("--temperature", "1.5"), ("--temperature", "-0.1")]],
    (["chat"], "--max-tokens", "0"),
    (["runs"], "--limit", "0"),
    *[(["serve"], opt, v) for opt, v in [
        ("--port", "0"), ("--port", "65536"), ("--max-tokens", "0"), ("--concurrency", "0"),
        ("--rpm", "0"), ("--itpm", "0"), ("--otpm", "0")]],
    *[(["worker", "--db", POSTGRES], opt, v) for opt, v in [
        ("--concurrency", "0"), ("--max-attempts", "0"), ("--timeout", "0"), ("--rpm", "0"),
        ("--itpm", "0"), ("--otpm", "0"), ("--lease", "0")]],
    *[(["local"], opt, v) for opt, v in [
        ("--port", "0"), ("--port", "99999"), ("--ttft-ms", "-1"), ("--token-ms", "-1"),
        ("--rpm", "0"), ("--itpm", "0"), ("--otpm", "0"), ("--fault-retry-after-s", "-1"),
        ("--batch-time-scale", "0"), ("--batch-concurrency", "0"), ("--batch-min-s", "-1")]],
]


@pytest.mark.parametrize(("command", "option", "value"), OUT_OF_BOUNDS,
                         ids=[f"{c[0]}{o}={v}" for c, o, v in OUT_OF_BOUNDS])
def test_a_numeric_option_out_of_bounds_names_the_option(
        tmp_path: Path, command: list[str], option: str, value: str) -> None:
    # A real input file: the option, not the input, must be what is blamed.
    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "hello"}\n')
    res = laneway([*command, f"{option}={value}"], tmp_path)
    assert_usage_error(res, f"'{option}'")
    assert "in.jsonl" not in res.stderr
    assert not (tmp_path / ".laneway").exists()  # refused before anything was opened
