"""Never paid twice: leases outlast a long 429 pause, and one process per SQLite run.

Each test counts what the local API (on loopback) completed per job, not only what the
ledger recorded: the ledger counts a job once even when it was paid for twice.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import pgserver
from laneway.governor.core import Governor
from laneway.local import LocalConfig, RunningLocal, start_local
from laneway.local.faults import FaultPlan
from laneway.provider.client import Provider
from laneway.runners.realtime import RealtimeRunner
from laneway.runners.realtime_options import RealtimeOptions
from laneway.runs.config import RunConfig
from laneway.runs.library import run
from laneway.store import AsyncStore, open_store
from laneway.store.statuses import JobStatus

LANEWAY = [sys.executable, "-m", "laneway"]


def prompts(n: int) -> list[str]:
    return [f"job number {i} says hello" for i in range(n)]


def write_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"job-{i}", "prompt": p}) + "\n"
                            for i, p in enumerate(prompts(n))))
    return path


def env_for(base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="200", **extra)
    return env


def seed_with_one_429(rate: float, *, draws: int, first: int, last: int) -> int:
    """A fault seed whose first ``draws`` requests get exactly one 429, in [first, last]."""
    for seed in range(5000):
        plan = FaultPlan({"429": rate}, seed=seed)
        hits = [i for i in range(draws) if plan.draw() is not None]
        if len(hits) == 1 and first <= hits[0] <= last:
            return seed
    raise AssertionError("no such seed")


def assert_each_answered_once(api: RunningLocal, n: int) -> None:
    answered = api.api.completions.answered
    twice = api.api.completions.more_than_once()
    assert not twice, f"{len(twice)} jobs answered more than once: {sorted(twice.items())[:5]}"
    assert set(answered) == set(prompts(n)), f"{len(answered)} of {n} jobs answered"


async def test_a_retry_after_longer_than_the_lease_sends_nothing_twice(tmp_path: Path) -> None:
    """One 429 whose retry-after (3 s) outlasts the lease (1 s), with small claims and
    100 ms answers, so the runner claims again after the pause while its own jobs are
    queued and in flight: it must not take them back (before: 6 jobs answered twice)."""
    n = 64
    seed = seed_with_one_429(0.03, draws=n + 16, first=12, last=20)
    api = start_local(LocalConfig(faults="429=0.03", fault_retry_after_s=3, seed=seed,
                                  ttft_ms=100))
    db = tmp_path / "l.db"
    try:
        await run(write_input(tmp_path / "in.jsonl", n),
                  config=RunConfig(db=db, no_work=True, run_name="r"))
        store = open_store(db)
        astore = AsyncStore(store)
        provider = Provider.at(api.base_url)
        try:
            runner = RealtimeRunner(
                run_id="r", astore=astore, provider=provider, governor=Governor(),
                options=RealtimeOptions(concurrency=4, claim_size=8, lease_s=1.0))
            tally = await runner.run()
            assert tally.rate_limited == 1
            assert tally.succeeded == n
            assert store.counts("r")[JobStatus.SUCCEEDED] == n
        finally:
            await provider.aclose()
            astore.close()
            store.close()
        assert_each_answered_once(api, n)
    finally:
        api.stop(wait=False)


def test_cli_lease_from_the_environment_outlasts_a_long_pause(tmp_path: Path) -> None:
    """`laneway run` with LANEWAY_LEASE_S=1 and a 429 asking for 3 s: every job is
    answered once (its leases are renewed while it waits)."""
    n = 600  # more than two claims of 256, so the runner claims again after the pause
    seed = seed_with_one_429(0.004, draws=n + 50, first=150, last=250)
    api = start_local(LocalConfig(faults="429=0.004", fault_retry_after_s=3, seed=seed,
                                  ttft_ms=20))
    try:
        write_input(tmp_path / "in.jsonl", n)
        env = env_for(api.base_url, LANEWAY_LEASE_S="1")
        res = subprocess.run([*LANEWAY, "run", "in.jsonl", "-o", "out.jsonl",
                              "--concurrency", "16", "--mode", "realtime"], env=env,
                             cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stderr
        assert api.api.stats["faults"] == 1
        assert_each_answered_once(api, n)
        bad = subprocess.run([*LANEWAY, "run", "in.jsonl", "--run", "other"], cwd=tmp_path,
                             text=True,
                             env=env_for(api.base_url, LANEWAY_LEASE_S="soon"),
                             capture_output=True, timeout=60)
        assert bad.returncode == 2 and "Traceback" not in bad.stderr
        assert "LANEWAY_LEASE_S='soon': not a number of seconds" in bad.stderr
    finally:
        api.stop(wait=False)


def test_a_second_process_on_a_sqlite_run_is_refused(tmp_path: Path) -> None:
    """Two `laneway run` of one run on one SQLite ledger, started together: one exits 2
    with one line naming the other's pid and host; the other finishes; each job is
    answered once (before: both ran, and 200-300 of 3,000 jobs were answered twice)."""
    n = 320
    api = start_local(LocalConfig(ttft_ms=60))  # a run lasts about 5 s
    procs: list[subprocess.Popen[str]] = []
    try:
        write_input(tmp_path / "in.jsonl", n)
        env = env_for(api.base_url)
        cmd = [*LANEWAY, "run", "in.jsonl", "-o", "out.jsonl", "--concurrency", "4",
               "--mode", "realtime"]
        procs = [subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        errs = [p.communicate(timeout=90)[1] for p in procs]
        codes = sorted(p.returncode for p in procs)
        assert codes == [0, 2], errs
        winner, loser = (0, 1) if procs[0].returncode == 0 else (1, 0)
        errors = [line for line in errs[loser].splitlines() if "error" in line]
        assert len(errors) == 1 and "Traceback" not in errs[loser], errs[loser]
        assert "being worked on by another laneway process" in errors[0]
        assert f"(pid {procs[winner].pid} on host {socket.gethostname()})" in errors[0]
        assert "in flight when the last process stopped" not in errs[winner]
        assert_each_answered_once(api, n)
        out = [json.loads(x)["custom_id"] for x in
               (tmp_path / "out.jsonl").read_text().splitlines()]
        assert out == [f"job-{i}" for i in range(n)]
        assert not list((tmp_path / ".laneway").glob("*.lock"))  # released at the end
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        api.stop(wait=False)


def _race(cmd: list[str], *, env: dict[str, str], cwd: Path
          ) -> list[subprocess.CompletedProcess[str]]:
    procs = [subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_racing_ingests_of_a_new_file_on_sqlite(tmp_path: Path, local_api: RunningLocal
                                               ) -> None:
    """Two `--no-work` ingests of one new file at once: no false "duplicate id"; each
    either enqueues the run or is told which process holds it."""
    n = 20_000
    write_input(tmp_path / "in.jsonl", n)
    results = _race([*LANEWAY, "run", "in.jsonl", "--no-work", "--run", "big"],
                    env=env_for(local_api.base_url), cwd=tmp_path)
    for res in results:
        assert "duplicate id" not in res.stderr
        assert res.returncode == 0 or (
            res.returncode == 2 and "being worked on by another laneway process (pid"
            in res.stderr), res.stderr
    assert any(r.returncode == 0 for r in results)
    store = open_store(tmp_path / ".laneway" / "laneway.db")
    try:
        run_row = store.get_run("big")
        assert run_row is not None and run_row.ingest_done and run_row.total == n
    finally:
        store.close()


@pytest.mark.postgres
def test_racing_ingests_of_a_new_file_on_postgres(tmp_path: Path, local_api: RunningLocal
                                                 ) -> None:
    """On PostgreSQL both ingests succeed: the second waits, then finds the run ingested."""
    try:
        server = pgserver.find_postgres()
        pgserver.wait_ready(server)
    except pgserver.PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL: {exc}")
    name, dsn = pgserver.new_schema(server)
    try:
        n = 20_000
        write_input(tmp_path / "in.jsonl", n)
        results = _race([*LANEWAY, "run", "in.jsonl", "--no-work", "--run", "big",
                         "--db", dsn], env=env_for(local_api.base_url), cwd=tmp_path)
        for res in results:
            assert res.returncode == 0, res.stderr
        store = open_store(dsn)
        try:
            run_row = store.get_run("big")
            assert run_row is not None and run_row.ingest_done and run_row.total == n
            assert store.counts("big").total == n
        finally:
            store.close()
    finally:
        pgserver.drop_schema(server, name)
