"""The official TypeScript SDK through the gateway (``tests/ts/check.mjs``, pointed at it
with ``ANTHROPIC_BASE_URL`` and nothing else) gets what the official Python SDK gets
straight from the local API.

``scripts/test`` installs Node.js and npm when they are missing and keeps
``tests/ts/node_modules`` in step with ``package-lock.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import anthropic
import pytest

from laneway.server.gateway.exchange import Exchange

from .helpers import Served, wait_for

TS = Path(__file__).resolve().parents[1] / "ts"
NODE = shutil.which("node")
MODEL = "claude-haiku-4-5"
PROMPT = "Say hello in five words."
MESSAGES: Any = [{"role": "user", "content": PROMPT}]

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="needs Node.js: `node` is not on PATH "
                       "(scripts/test installs Debian's nodejs and npm)"),
]


def run_check(base_url: str) -> dict[str, Any]:
    if not (TS / "node_modules" / "@anthropic-ai" / "sdk").is_dir():
        pytest.fail("tests/ts/node_modules is missing: run "
                    "`npm ci --prefix tests/ts --no-audit --no-fund` (scripts/test does)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, ANTHROPIC_API_KEY="any-key")
    done = subprocess.run([str(NODE), str(TS / "check.mjs")], env=env, cwd=TS,
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"check.mjs failed:\n{done.stderr}\n{done.stdout}"
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    result: dict[str, Any] = json.loads(lines[0])
    return result


def python_direct(base_url: str) -> dict[str, Any]:
    """What the Python SDK gets for the same calls, straight from the local API."""
    c = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)
    message = c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    with c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES,
                           stream=True) as raw:
        events = [event.type for event in raw]
    with c.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
        final = stream.get_final_message()
    with pytest.raises(anthropic.BadRequestError) as info:
        c.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES,
                          extra_body={"not_a_field": 1})
    err = info.value
    return {
        "model": MODEL, "prompt": PROMPT,
        "create": message.model_dump(mode="json", exclude_unset=True, exclude={"id"}),
        "stream": {"events": events, "text": final.content[0].text,  # type: ignore[union-attr]
                   "final": {"type": final.type, "role": final.role, "model": final.model,
                             "stop_reason": final.stop_reason,
                             "stop_sequence": final.stop_sequence,
                             "content": [{"type": b.type, "text": b.text}  # type: ignore[union-attr]
                                         for b in final.content],
                             "input_tokens": final.usage.input_tokens,
                             "output_tokens": final.usage.output_tokens}},
        "count_tokens": c.messages.count_tokens(model=MODEL, messages=MESSAGES).model_dump(),
        "models": [m.model_dump(mode="json", exclude_unset=True) for m in c.models.list()],
        "bad_request": {"class": type(err).__name__, "status": err.status_code,
                        "type": err.type, "error": err.body["error"],  # type: ignore[index]
                        "has_request_id": (err.request_id or "").startswith("req_")},
    }


def test_the_typescript_sdk_through_the_gateway_gets_the_upstreams_answers(
        served: Served) -> None:
    seen: list[Exchange] = []
    served.app.state.gateway.observers.append(seen.append)
    relayed = run_check(served.base_url)
    # Every Messages call went through the gateway: create, the stream, the bad request.
    wait_for(lambda: len(seen) == 3, timeout_s=3, what="the gateway's records")
    assert sorted((x.status, x.streamed) for x in seen) == [
        (200, False), (200, True), (400, False)]
    direct = python_direct(served.local.base_url)
    assert relayed.keys() == direct.keys()
    for name in direct:
        assert relayed[name] == direct[name], name
    assert "content_block_delta" in relayed["stream"]["events"]
    assert len(relayed["models"]) > 5  # more than one page of 5: the SDK paged through
