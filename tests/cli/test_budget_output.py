"""`--budget` with a model of unknown price, and `-o` paths that would destroy or fail:
refused before anything is sent (counted on the local API's side), through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import inprocess
from laneway.local import RunningLocal

LANEWAY = [sys.executable, "-m", "laneway"]


def cli(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``laneway ARGS`` in this process (``inprocess``): what it prints and its exit code."""
    return inprocess.laneway(args, env=env, cwd=cwd)


def env_for(base_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=base_url, COLUMNS="200", LANEWAY_BATCH_POLL_S="0.1,0.3")
    return env


def make_input(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"doc-{i}", "prompt": f"text number {i} here"})
                            + "\n" for i in range(n)))
    return path


def sent(local: RunningLocal) -> int:
    """Requests the server was asked to answer: realtime and in batches."""
    api = local.api
    return api.stats["requests"] + sum(len(b.requests) for b in api.batches.batches.values())


def one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    errors = [x for x in res.stderr.splitlines() if "error" in x]
    assert len(errors) == 1, res.stderr
    return errors[0]


# -- --budget and prices ----------------------------------------------------------------
@pytest.mark.parametrize("mode", ["realtime", "native"])
@pytest.mark.parametrize("model", ["claude-imaginary-9", "claude-opus-4-1-preview"])
def test_budget_with_unknown_price_sends_nothing(tmp_path: Path, local_api: RunningLocal,
                                                 mode: str, model: str) -> None:
    make_input(tmp_path / "in.jsonl", 200)
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", "--mode", mode, "--model", model,
               "--max-tokens", "4096", "--budget", "0.05", "-q"],
              env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    line = one_error_line(res)
    assert model in line and "--price IN/OUT" in line
    assert sent(local_api) == 0
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.parametrize("mode", ["realtime", "native"])
@pytest.mark.parametrize("model", ["claude-opus-4-1", "claude-sonnet-4-0",
                                   "claude-3-5-haiku-latest"])
def test_budget_counts_older_models(tmp_path: Path, local_api: RunningLocal, mode: str,
                                    model: str) -> None:
    """4,096 max tokens of these cost more than $0.0001 at worst: nothing is sent."""
    make_input(tmp_path / "in.jsonl", 50)
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", "--mode", mode, "--model", model,
               "--max-tokens", "4096", "--budget", "0.0001", "-q"],
              env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert "budget" in res.stderr and "Traceback" not in res.stderr
    assert sent(local_api) == 0


def test_price_option_prices_an_unknown_model(tmp_path: Path, local_api: RunningLocal) -> None:
    make_input(tmp_path / "in.jsonl", 40)
    env = env_for(local_api.base_url)
    # $1/$1 per million: a request's worst case is ~$0.001 (1,000 max tokens) and an echo
    # answer costs ~$0.00001: $0.0012 pays for ~18 of them.
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", "--mode", "realtime", "--concurrency", "1",
               "--model", "claude-imaginary-9", "--max-tokens", "1000", "--budget", "0.0012",
               "--price", "1/1", "-q"], env=env, cwd=tmp_path)
    assert res.returncode == 3, res.stderr
    assert 5 <= sent(local_api) < 40
    status = cli(["status"], env=env, cwd=tmp_path)
    assert "not counted" not in status.stdout  # every answer was priced
    bad = cli(["run", "in.jsonl", "--price", "cheap", "--budget", "1"], env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "--price 'cheap'" in one_error_line(bad)


def test_estimate_takes_a_price(tmp_path: Path, local_api: RunningLocal) -> None:
    make_input(tmp_path / "in.jsonl", 10)
    env = env_for(local_api.base_url)
    res = cli(["estimate", "in.jsonl", "--model", "claude-imaginary-9", "--price", "3/15",
               "--json"], env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    est = json.loads(res.stdout)
    assert est["realtime"]["unpriced"] == [] and est["realtime"]["cost_usd"] > 0


# -- -o ----------------------------------------------------------------------------------
def _link(kind: str, tmp_path: Path) -> str:
    if kind == "same":
        return "in.jsonl"
    if kind == "symlink":
        (tmp_path / "link.jsonl").symlink_to("in.jsonl")
    else:
        os.link(tmp_path / "in.jsonl", tmp_path / "link.jsonl")
    return "link.jsonl"


@pytest.mark.parametrize("kind", ["same", "symlink", "hardlink"])
def test_output_equal_to_input_is_refused(tmp_path: Path, local_api: RunningLocal,
                                          kind: str) -> None:
    before = make_input(tmp_path / "in.jsonl", 5).read_text()
    out = _link(kind, tmp_path)
    res = cli(["run", "in.jsonl", "-o", out, "-q"], env=env_for(local_api.base_url),
              cwd=tmp_path)
    assert res.returncode == 2
    assert "input file" in one_error_line(res)
    assert (tmp_path / "in.jsonl").read_text() == before
    assert sent(local_api) == 0


@pytest.mark.parametrize(("out", "message"), [
    ("adir", "is a directory"),
    ("afile/out.jsonl", "is a file, not a directory"),
    ("missing/out.jsonl", "does not exist"),
    ("apipe", "not a regular file"),  # (a pipe of our own: never a system device)
])
def test_bad_output_is_refused_before_sending(tmp_path: Path, local_api: RunningLocal,
                                              out: str, message: str) -> None:
    make_input(tmp_path / "in.jsonl", 20)
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "apipe")
    res = cli(["run", "in.jsonl", "-o", out, "-q"], env=env_for(local_api.base_url),
              cwd=tmp_path)
    assert res.returncode == 2
    assert message in one_error_line(res)
    assert sent(local_api) == 0
    assert not (tmp_path / ".laneway").exists()  # nothing ran: not even a ledger


@pytest.mark.parametrize("args", [
    ["--mode", "realtime", "--budget", "0"],
    ["--mode", "realtime", "--budget", "-1"],
    ["--mode", "native", "--budget", "0"],
    ["--model", "claude-imaginary-9", "--budget", "1"],  # refused: no price
])
def test_existing_output_untouched_until_results_exist(tmp_path: Path, local_api: RunningLocal,
                                                       args: list[str]) -> None:
    make_input(tmp_path / "in.jsonl", 20)
    (tmp_path / "out.jsonl").write_text("precious\n")
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", *args, "-q"],
              env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert (tmp_path / "out.jsonl").read_text() == "precious\n"
    assert sent(local_api) == 0


def test_results_output_checked_and_stale_parts_cleaned(tmp_path: Path,
                                                        local_api: RunningLocal) -> None:
    env = env_for(local_api.base_url)
    before = make_input(tmp_path / "in.jsonl", 5).read_text()
    # What a run killed while writing leaves (its process is gone), and a live one's.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = tmp_path / f".out.jsonl.{dead}.k1ll3d.part"
    stale.write_text("half")
    # A live process that is not the command's (the command runs in this one).
    live = tmp_path / f".out.jsonl.{os.getppid()}.w0rk1n.part"
    live.write_text("half")
    res = cli(["run", "in.jsonl", "-o", "out.jsonl", "--run", "r", "-q"], env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not stale.exists() and live.exists()
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5

    stale.write_text("half")
    res = cli(["results", "r", "-o", "again.jsonl"], env=env, cwd=tmp_path)
    assert res.returncode == 0
    res = cli(["results", "r", "-o", "out.jsonl", "--format", "text"], env=env, cwd=tmp_path)
    assert res.returncode == 0 and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".part")) == [live.name]

    res = cli(["results", "r", "-o", "in.jsonl"], env=env, cwd=tmp_path)
    assert res.returncode == 2 and "input file" in one_error_line(res)
    assert (tmp_path / "in.jsonl").read_text() == before
    res = cli(["results", "r", "-o", "."], env=env, cwd=tmp_path)
    assert res.returncode == 2 and "is a directory" in one_error_line(res)


# -- laneway worker ------------------------------------------------------------------------
@pytest.mark.postgres
async def test_worker_skips_a_budget_it_cannot_count(tmp_path: Path, local_api: RunningLocal,
                                                     pg: str) -> None:
    """Enqueued with --price (this process does not know it): a worker sends nothing."""
    from laneway.provider.client import Provider
    from laneway.runs.worker import WorkerConfig, work

    make_input(tmp_path / "in.jsonl", 20)
    res = cli(["run", "in.jsonl", "--db", pg, "--no-work", "--run", "r", "--budget", "1",
               "--model", "claude-imaginary-8", "--price", "3/15"],
              env=env_for(local_api.base_url), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    notices: list[str] = []
    report = await work(WorkerConfig(db=pg), provider=Provider.at(local_api.base_url),
                        on_notice=notices.append)
    assert sent(local_api) == 0
    assert "no price known for 'claude-imaginary-8'" in report.runs["r"].note, notices
