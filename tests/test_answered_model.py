"""The model that answered is named wherever an answer is shown (issue 25, goal 1).

A model engine answers with its own id whatever was asked; here the echo engine is made
to name itself ``smollm2-135m-instruct`` (``Named``), so the whole path (results, the
run's summary, ``status``, ``ask``, the gateway's traffic, the runs API) is checked in
a fraction of a second. The echo engine itself keeps answering as the model asked for
(the API's simulator: priced as that model).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
from sqlalchemy import select

import inprocess
from laneway.chat import Conversation
from laneway.cli.chat import header
from laneway.cost.answered import note, price_answer, substituted
from laneway.cost.prices import Usage
from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.engines.echo import EchoEngine
from laneway.provider.client import Provider
from laneway.store import open_store
from laneway.store import schema as S
from server.helpers import start_server

LOCAL = "smollm2-135m-instruct"
ASKED = "claude-haiku-4-5"
BOTH = re.compile(r"asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, \$0; "
                  r"on claude-haiku-4-5 this would cost \$0\.\d+")


class Named(EchoEngine):
    """The echo engine, answering as a model engine does: under its own name."""

    model_id = LOCAL


@pytest.fixture
def named_api() -> Iterator[RunningLocal]:
    running = start_local(LocalConfig(), engine=Named())
    yield running
    running.stop()


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    return {**env, "ANTHROPIC_BASE_URL": base_url, "COLUMNS": "200"}


def test_pricing_names_both_models_once() -> None:
    usage = Usage(input_tokens=1000, output_tokens=2000)
    local = price_answer(ASKED, {"model": LOCAL}, usage)
    assert (local.answered, local.cost_usd) == (LOCAL, 0.0)
    assert local.asked_cost_usd == pytest.approx((1000 * 1 + 2000 * 5) / 1e6)
    assert note(ASKED, LOCAL, 0.0, local.asked_cost_usd) == (
        "asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, $0; "
        "on claude-haiku-4-5 this would cost $0.0110")
    same = price_answer(ASKED, {"model": "claude-haiku-4-5-20251001"}, usage)
    assert not same.substituted and same.asked_cost_usd is None and same.cost_usd > 0
    assert note(ASKED, "claude-haiku-4-5-20251001", same.cost_usd, None) == ""
    assert not substituted("local", LOCAL)  # a local model asked for: nothing to say
    unpriced = price_answer("claude-imaginary-9", {"model": LOCAL}, usage)
    assert "no price known for claude-imaginary-9" in note(
        "claude-imaginary-9", LOCAL, 0.0, unpriced.asked_cost_usd)


def test_the_engines_name_themselves_or_the_model_asked(named_api: RunningLocal,
                                                        local_api: RunningLocal) -> None:
    for running, named in ((named_api, LOCAL), (local_api, ASKED)):
        client = anthropic.Anthropic(base_url=running.base_url, api_key="k", max_retries=0)
        message = client.messages.create(model=ASKED, max_tokens=8,
                                         messages=[{"role": "user", "content": "hi there"}])
        assert message.model == named
        with client.messages.stream(model=ASKED, max_tokens=8,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            assert stream.get_final_message().model == named
    ids = [m.id for m in anthropic.Anthropic(base_url=named_api.base_url, api_key="k")
           .models.list(limit=100).data]
    assert LOCAL in ids


def test_a_run_says_who_answered(tmp_path: Path, named_api: RunningLocal) -> None:
    (tmp_path / "in.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "prompt": f"question number {i}"}) + "\n" for i in range(5)))
    env = env_for(named_api.base_url)
    res = inprocess.laneway(["run", "in.jsonl", "-o", "out.jsonl", "--run", "r"], env=env,
                            cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert len(BOTH.findall(res.stderr)) == 1, res.stderr  # said once
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert {r["result"]["message"]["model"] for r in rows} == {LOCAL}
    status = inprocess.laneway(["status", "r"], env=env, cwd=tmp_path)
    assert len(BOTH.findall(status.stdout)) == 1, status.stdout
    store = open_store(f"sqlite:///{tmp_path / '.laneway' / 'laneway.db'}")
    try:
        with store.engine.connect() as conn:
            kept = conn.execute(select(S.jobs.c.model, S.jobs.c.answered_model,
                                       S.jobs.c.cost_usd, S.jobs.c.asked_cost_usd)).all()
        assert {(m, a, c) for m, a, c, _ in kept} == {(ASKED, LOCAL, 0.0)}
        assert all(asked > 0 for *_, asked in kept)
        (answered,) = store.answered_models("r")
        assert (answered.asked, answered.answered, answered.jobs) == (ASKED, LOCAL, 5)
        assert answered.asked_cost_usd == pytest.approx(sum(a for *_, a in kept))
    finally:
        store.close()


def test_ask_says_both_in_its_footer(tmp_path: Path, named_api: RunningLocal) -> None:
    res = inprocess.laneway(["ask", "Explain closures"], env=env_for(named_api.base_url),
                            cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "$0 (local)" in res.stderr and len(BOTH.findall(res.stderr)) == 1, res.stderr


def test_ask_on_the_model_asked_says_nothing_more(tmp_path: Path,
                                                  local_api: RunningLocal) -> None:
    res = inprocess.laneway(["ask", "Explain closures"], env=env_for(local_api.base_url),
                            cwd=tmp_path)
    assert res.returncode == 0 and "answered by" not in res.stderr, res.stderr


async def test_chat_turns_and_header_name_both(named_api: RunningLocal) -> None:
    client = anthropic.AsyncAnthropic(base_url=named_api.base_url, api_key="k", max_retries=0)
    provider = Provider(client, "anthropic", named_api.base_url)
    try:
        turn = await Conversation(provider, model=ASKED).send("one two three")
    finally:
        await provider.aclose()
    assert (turn.model, turn.answered_model, turn.cost_usd) == (ASKED, LOCAL, 0.0)
    assert turn.asked_cost_usd is not None and turn.asked_cost_usd > 0
    assert BOTH.search(turn.note)
    assert header(ASKED, LOCAL, free=True) == (
        "laneway chat · asked claude-haiku-4-5; answered by smollm2-135m-instruct, local, $0"
        " · /help for commands")
    assert header(ASKED, None, free=False) == "laneway chat · claude-haiku-4-5 · /help for commands"


def test_gateway_traffic_and_runs_name_the_answering_model(tmp_path: Path,
                                                           named_api: RunningLocal) -> None:
    served = start_server(named_api, tmp_path / "l.db", kind="anthropic")
    try:
        sdk = anthropic.Anthropic(base_url=served.base_url, api_key="k", max_retries=0)
        sdk.messages.create(model=ASKED, max_tokens=8,
                            messages=[{"role": "user", "content": "a plain one"}])
        with sdk.messages.stream(model=ASKED, max_tokens=8,
                                 messages=[{"role": "user", "content": "a streamed one"}]) as s:
            s.get_final_message()
        with served.client() as http:
            rows = http.get("/v1/laneway/traffic").json()["keys"]
            assert {tuple(r["answered_by"]) for r in rows} == {(LOCAL,)}
            assert all(r["asked_cost_usd"] > 0 and r["cost_usd"] == 0 for r in rows)
            made = http.post("/v1/runs", files={"file": ("in.jsonl", b'{"id": "a", "prompt": "x y"}\n')})
            assert made.status_code == 201, made.text
            run_id = made.json()["id"]
            for _ in range(100):
                info = http.get(f"/v1/runs/{run_id}").json()
                if info["done"] == 1:
                    break
                time.sleep(0.05)
            assert len(info["models"]) == 1 and BOTH.search(info["models"][0]), info
        deadline = time.monotonic() + 10  # the ledger is written every half second
        while not (kept := served.agent.store.traffic_by_key()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert {r["answered_model"] for r in kept} == {LOCAL}
    finally:
        served.stop()


async def test_the_library_summary_names_both(tmp_path: Path, named_api: RunningLocal) -> None:
    import laneway

    (tmp_path / "in.jsonl").write_text('{"id": "a", "prompt": "one two"}\n')
    provider = Provider.at(named_api.base_url)
    try:
        summary = await laneway.run(tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                                    provider=provider, db=str(tmp_path / "l.db"))
    finally:
        await provider.aclose()
    (used,) = summary.models
    assert (used["asked"], used["answered"], used["jobs"], used["cost_usd"]) == (
        ASKED, LOCAL, 1, 0.0)
    assert used["asked_cost_usd"] > 0 and summary.cost_usd == 0
