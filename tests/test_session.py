"""The run session: what laneway.run, workers and HybridAgent share lives in one place."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import laneway
from laneway.agent import HybridAgent
from laneway.jobs.formats import JobDefaults
from laneway.local import RunningLocal
from laneway.provider import backend, client
from laneway.provider.client import Provider
from laneway.runners.native import NativeTally
from laneway.runners.tally import Tally
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.runs.options import realtime_options
from laneway.runs.progress import progress_of
from laneway.runs.status import final_status
from laneway.runs.worker import WorkerConfig
from laneway.store import Counts, open_store
from laneway.store.statuses import JobStatus

SRC = Path(laneway.__file__).parent


def test_no_module_imports_a_private_name() -> None:
    """agent.py used to import runs._prepare: what two callers share is public."""
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("laneway"):
                found += [f"{path.relative_to(SRC)}: {node.module}.{a.name}"
                          for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    assert found == []


def _status_writes(path: Path) -> list[str]:
    """Calls of ``set_run_status(...)`` or ``update_run(..., status=...)`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            name = node.func.attr
            if name == "set_run_status" or (
                    name == "update_run" and any(k.arg == "status" for k in node.keywords)):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


def test_a_run_s_status_is_written_in_one_module() -> None:
    """runs/status.py is the only writer of runs.status outside store/ (main had 13
    writes in 6 modules: the agent, the worker, library, execute, ingest, native cancel)."""
    writers = {w.split(":")[0] for path in SRC.rglob("*.py")
               if "store" not in path.relative_to(SRC).parts for w in _status_writes(path)}
    assert writers == {"runs/status.py"}


def _imported(path: Path) -> set[str]:
    """``module.name`` of every ``from laneway... import name`` in ``path``."""
    return {f"{node.module}.{a.name}" for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("laneway")
            for a in node.names}


def _importers(*names: str) -> set[str]:
    return {str(path.relative_to(SRC)) for path in SRC.rglob("*.py")
            if _imported(path) & set(names)}


def test_a_run_s_life_is_carried_out_by_run_session() -> None:
    """Only runs/session.py carries a run out (runs/execute.py's runners); laneway.run(),
    the worker and the background runs (HybridAgent.submit, the gateway's batches) are
    its callers (at 207e4bf the worker ran its own runners, and the agent and the batch
    driver kept the background runs)."""
    carriers = [f"laneway.runs.execute.{name}" for name in (
        "execute", "run_realtime", "run_batches", "realtime_runner", "watch_realtime")]
    assert _importers(*carriers) == {"runs/session.py"}
    assert _importers("laneway.runs.session.RunSession") == {
        "runs/library.py", "runs/worker.py", "runs/background.py"}
    assert _importers("laneway.runs.prepare.take_up") == {
        "runs/library.py", "runs/background.py"}


def test_the_gateway_s_batches_reach_runs_through_runs_not_the_agent() -> None:
    imported = _imported(SRC / "server/gateway/batch_driver.py")
    assert not [name for name in imported if name.startswith("laneway.agent")]
    assert "laneway.runs.background.BackgroundRuns" in imported


def test_every_way_to_cancel_reports_one_type() -> None:
    """``laneway cancel``, the runs API, the gateway's batches and HybridAgent.cancel go
    through runs/cancel.py; no other module defines a cancel report (main had three:
    CancelReport, Canceled, and HybridAgent.cancel's int). The runs API's JSON shape
    (server/models.py) is built from it."""
    reports = sorted(f"{path.relative_to(SRC)}:{node.name}" for path in SRC.rglob("*.py")
                     for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ClassDef) and "Cancel" in node.name)
    assert reports == ["runs/cancel.py:CancelReport", "server/models.py:CancelResult"]


def test_progress_is_the_counts_before_plus_the_live_tally() -> None:
    before = Counts(total=10, by_status={JobStatus.SUCCEEDED: 3, JobStatus.ERRORED: 1, JobStatus.PENDING: 6},
                    input_tokens=100, output_tokens=50, cost_usd=0.5, unpriced=0)
    tally = Tally(succeeded=2, errored=1, input_tokens=20, output_tokens=10, cost_usd=0.25,
                  in_flight=4)
    p = progress_of("r", 10, before, tally, phase="native")
    assert (p.succeeded, p.errored, p.in_flight, p.done) == (5, 2, 4, 7)
    assert (p.input_tokens, p.output_tokens, p.cost_usd) == (120, 60, 0.75)
    assert p.phase == "native" and p.rate_per_s > 0
    ledger = progress_of("r", 10, before, phase="done")
    assert (ledger.succeeded, ledger.errored, ledger.in_flight, ledger.rate_per_s) == (
        3, 1, 0, 0.0)


def test_a_hybrid_run_s_tally_is_its_batches_plus_its_realtime_part() -> None:
    native = NativeTally(succeeded=5, errored=1, input_tokens=50, output_tokens=20,
                         cost_usd=0.5, requests=6, batches=2, fallback=True, left_for_realtime=4)
    realtime = Tally(succeeded=3, input_tokens=30, output_tokens=9, cost_usd=0.25, requests=4,
                     retries=2, rate_limited=1, parked=1, stop_reason="auth",
                     stop_detail="the API refused the key", utilization={"m:requests": 0.5})
    native.add(realtime)
    assert (native.succeeded, native.errored, native.done, native.requests) == (8, 1, 9, 10)
    assert (native.input_tokens, native.output_tokens, native.cost_usd) == (80, 29, 0.75)
    assert (native.retries, native.rate_limited, native.parked) == (2, 1, 1)
    assert (native.batches, native.left_for_realtime) == (2, 4)  # what only batches have
    # How the run stopped is the realtime part's, with the one line that says why.
    assert (native.stop_reason, native.stop_detail) == ("auth", "the API refused the key")
    assert native.utilization == {"m:requests": 0.5}


def test_a_run_and_a_worker_map_their_options_alike() -> None:
    sending = {"concurrency": 3, "max_attempts": 2, "timeout_s": 7.0, "stream": True,
               "wait_for_api_s": 5.0}
    from_run = realtime_options(RunConfig(**sending), worker_id="w", budget_usd=1.0)
    from_worker = realtime_options(WorkerConfig(db="postgresql://h/db", **sending),
                                   worker_id="w", budget_usd=1.0)
    assert from_run == from_worker
    assert (from_run.concurrency, from_run.retry.max_attempts, from_run.timeout_s,
            from_run.stream, from_run.wait_for_api_s, from_run.budget_usd) == (
        3, 2, 7.0, True, 5.0, 1.0)
    leased = realtime_options(RunConfig(), worker_id="w", budget_usd=None, claim_size=9,
                              lease_s=4.0)
    assert (leased.claim_size, leased.lease_s) == (9, 4.0)


async def test_open_provider_is_the_backend_s_not_the_sdk_wrapper_s() -> None:
    assert not hasattr(client, "open_provider")
    assert laneway.open_provider is backend.open_provider
    p = backend.open_provider("local", engine="echo", quiet=True)
    try:
        reply = await p.create({"model": "claude-haiku-4-5", "max_tokens": 20,
                                "messages": [{"role": "user", "content": "one two"}]})
        assert p.kind == "local" and "echo" in p.description
        assert reply.message["content"][0]["text"] == "one two"
    finally:
        await p.aclose()


def test_choosing_the_backend_does_not_load_the_sdk() -> None:
    code = ("import sys, laneway.provider.backend as b; b.choose_provider('local'); "
            "print('anthropic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("caller", ["run", "agent"])
async def test_run_and_agent_write_the_same_final_progress(
        caller: str, local_api: RunningLocal, tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"id": f"j{i}", "prompt": f"w{i}"}) + "\n"
                           for i in range(5)))
    p = Provider.at(local_api.base_url)
    try:
        if caller == "run":
            summary = await run(inp, provider=p, db=db,
                                defaults=JobDefaults(model="claude-haiku-4-5"))
            run_id = summary.run_id
        else:
            async with HybridAgent(provider=p, db=db, model="claude-haiku-4-5") as agent:
                run_id = await agent.submit(inp)
                await agent.wait(run_id, timeout_s=20)
    finally:
        await p.aclose()
    store = open_store(db)
    try:
        final = store.events_since(run_id, kind="progress")[-1]["data"]
    finally:
        store.close()
    assert (final["phase"], final["succeeded"], final["total"]) == ("done", 5, 5)
    assert {"governor", "history"} <= set(final)


def test_final_status_one_rule_for_every_caller() -> None:
    assert final_status(complete=True, canceled=True, stop_reason=None) == "canceled"
    assert final_status(complete=True, canceled=False, stop_reason="interrupted") == "done"
    assert final_status(complete=False, canceled=False, stop_reason="budget") == "stopped"
    assert final_status(complete=False, canceled=False, stop_reason=None) == "running"
    assert final_status(complete=False, canceled=False, stop_reason=None,
                        unfinished="stopped") == "stopped"
