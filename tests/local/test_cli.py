"""``laneway local`` as a user runs it: a subprocess serving the API on a port."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import anthropic

from laneway.local.server import free_port

from .helpers import MODEL, PROMPT, text_of, user

LANEWAY = str(Path(sys.executable).with_name("laneway"))


async def test_laneway_local_serves_on_the_given_port() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        LANEWAY, "local", "--engine", "echo", "--port", str(port), "--rpm", "100",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        async with anthropic.AsyncAnthropic(
            base_url=f"http://127.0.0.1:{port}", api_key="k", max_retries=0, timeout=5
        ) as client:
            deadline = time.monotonic() + 20
            while True:
                try:
                    raw = await client.messages.with_raw_response.create(
                        model=MODEL, max_tokens=100, messages=user(PROMPT))
                    break
                except anthropic.APIConnectionError:
                    assert proc.returncode is None, "laneway local exited early"
                    assert time.monotonic() < deadline, "laneway local did not answer"
                    await asyncio.sleep(0.1)
            message = await raw.parse()
            assert text_of(message) == PROMPT
            assert raw.headers["anthropic-ratelimit-requests-limit"] == "100"
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, raw_stderr = await asyncio.wait_for(proc.communicate(), timeout=10)
    stderr = raw_stderr.decode()
    assert f"http://127.0.0.1:{port}" in stderr
    assert "Traceback" not in stderr


def test_bad_fault_spec_is_a_one_line_error() -> None:
    done = subprocess.run(
        [LANEWAY, "local", "--engine", "echo", "--port", str(free_port()),
         "--faults", "explode=0.5"],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode == 2
    assert "--faults" in done.stderr and "explode" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_states_the_smollm2_sampling_defaults() -> None:
    done = subprocess.run([LANEWAY, "local", "--help"], capture_output=True, text=True,
                          timeout=30, env={**os.environ, "COLUMNS": "100"})
    assert done.returncode == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", done.stdout).split())
    assert "samples at temperature 0.2 and top_p 0.9" in text
    assert "sets none of temperature / top_p / top_k" in text
