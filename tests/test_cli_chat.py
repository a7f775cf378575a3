"""``laneway chat`` driven through a pseudo-terminal, as a person would use it."""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from laneway.local import RunningLocal

LANEWAY = str(Path(sys.executable).with_name("laneway"))
LONG = " ".join(f"piece{i}" for i in range(80))


class Terminal:
    """``laneway chat`` on a pty that is its controlling terminal (so ^C is SIGINT)."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.master, slave = os.openpty()

        def become_session_leader() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        # preexec_fn: the child must own its tty for ^C to arrive as SIGINT.
        self.proc = subprocess.Popen(
            [LANEWAY, "chat", *args], stdin=slave, stdout=slave, stderr=slave, env=env,
            cwd=cwd, close_fds=True, preexec_fn=become_session_leader)
        os.close(slave)
        self.seen = b""

    def expect(self, needle: str, *, timeout_s: float = 15.0) -> str:
        """Read until ``needle`` appears after what earlier calls consumed."""
        want = needle.encode()
        deadline = time.monotonic() + timeout_s
        while want not in self.seen:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not ready:
                raise AssertionError(f"no {needle!r} in:\n{self.seen.decode(errors='replace')}")
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError(f"exited before {needle!r}:\n"
                                     f"{self.seen.decode(errors='replace')}")
            self.seen += chunk
        at = self.seen.index(want) + len(want)
        out, self.seen = self.seen[:at], self.seen[at:]
        return out.decode(errors="replace")

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def interrupt_until_exit(self, *, tries: int = 5) -> int:
        """Press Ctrl-C; press again if it was lost.

        CPython's ``input()`` drops a SIGINT that lands between writing the prompt and
        blocking on the terminal (the flag is set but nothing wakes the read), so a
        person presses again; so does this.
        """
        for _ in range(tries):
            self.send("\x03")
            try:
                return self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                continue
        return self.close()

    def interrupt_until(self, needle: str, *, tries: int = 5) -> str:
        """Press Ctrl-C until ``needle`` shows (see ``interrupt_until_exit``)."""
        for _ in range(tries - 1):
            self.send("\x03")
            try:
                return self.expect(needle, timeout_s=3)
            except AssertionError:
                continue
        self.send("\x03")
        return self.expect(needle)

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


def chat_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    env.update({"LANEWAY_LOCAL_ENGINE": "echo", "TERM": "dumb", "COLUMNS": "120",
                "NO_COLOR": "1"}, **extra)
    return env


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal([], chat_env(), tmp_path)
    yield term
    if term.proc.poll() is None:
        term.proc.kill()
        term.close()


def test_a_conversation_with_commands(terminal: Terminal, tmp_path: Path) -> None:
    terminal.expect("you> ")
    terminal.send("hello from a terminal\n")
    answer = terminal.expect("tok/s")
    assert "hello from a terminal\r\n" in answer.split("you> ", 1)[-1]
    stats = terminal.expect("\n")
    assert "out tokens · $0.0000" in stats  # the local model is free
    terminal.send("second line\n")
    terminal.expect("second line")
    terminal.expect("tok/s")
    terminal.send("/help\n")
    terminal.expect("/save FILE")
    terminal.send("/save conv.json\n")
    terminal.expect("saved 2 turns")
    saved = json.loads((tmp_path / "conv.json").read_text())
    assert [m["content"] for m in saved["messages"]] == [
        "hello from a terminal", "hello from a terminal", "second line", "second line"]
    terminal.send("/reset\n")
    terminal.expect("conversation reset")
    terminal.send("/nope\n")
    terminal.expect("unknown command /nope")
    terminal.send("/quit\n")
    assert terminal.close() == 0


def test_ctrl_d_leaves(terminal: Terminal) -> None:
    terminal.expect("you> ")
    terminal.send("\x04")
    assert terminal.close() == 0


@pytest.mark.local_config(token_ms=25)
def test_ctrl_c_stops_the_answer_and_stays(local_api: RunningLocal, tmp_path: Path) -> None:
    counted: dict[str, Any] = {"cut": 0}
    inner = local_api.api.engine

    class Counting:
        name = inner.name

        def count_tokens(self, prompt: Any) -> int:
            return int(inner.count_tokens(prompt))

        async def generate(self, prompt: Any, params: Any) -> Any:
            done = False
            try:
                async for token in inner.generate(prompt, params):
                    yield token
                done = True
            finally:
                counted["cut"] += not done

        async def aclose(self) -> None:
            await inner.aclose()

    local_api.api.engine = Counting()
    env = chat_env(ANTHROPIC_BASE_URL=local_api.base_url)
    term = Terminal(["--provider", "anthropic"], env, tmp_path)
    try:
        term.expect("you> ")
        term.send("short\n")
        term.expect("tok/s")
        term.send(LONG + "\n")
        term.expect("piece79\r\n")  # the terminal's echo of the line typed
        term.expect("piece3")  # the answer is arriving...
        term.send("\x03")  # ...Ctrl-C
        term.expect("stopped")
        deadline = time.monotonic() + 2
        while counted["cut"] == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert counted["cut"] == 1  # the request upstream was cut short
        term.expect("you> ")
        term.send("/save c.json\n")  # still chatting; the half answer was not kept
        term.expect("saved 1 turns")
        saved = json.loads((tmp_path / "c.json").read_text())
        assert [m["content"] for m in saved["messages"]] == ["short", "short"]
        term.expect("you> ")
        term.interrupt_until("Ctrl-C again")  # Ctrl-C at the prompt: a hint...
        term.expect("you> ")
        assert term.interrupt_until_exit() == 0  # ...and a second one leaves
    finally:
        if term.proc.poll() is None:
            term.proc.kill()


@pytest.mark.model
def test_the_model_is_loaded_before_the_first_prompt(tmp_path: Path) -> None:
    """The embedded model's start-up notice ("loading SmolLM2...") comes before the
    header and the first prompt, never inside the first answer (it was: the model loaded
    on the first question, its line between the question and the answer)."""
    pytest.importorskip("llama_cpp")
    term = Terminal([], chat_env(LANEWAY_LOCAL_ENGINE="smollm2"), tmp_path)
    try:
        before = term.expect("you> ", timeout_s=60)
        assert "loading SmolLM2" in before, before
        assert before.index("loading SmolLM2") < before.index("laneway chat ·")
        term.send("Say hi.\n")
        answer = term.expect("tok/s", timeout_s=60)
        assert "loading" not in answer, answer
        term.send("/quit\n")
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
            term.close()
